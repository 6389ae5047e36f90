"""Inference: the fine-tuned model packaged with everything it needs (detector, VQ-VAE,
SIA/OT/LLM weights, vocabularies, params) and scene graphs predicted from an Action Genome
folder exactly as the evaluate stage scores them.

- :mod:`~scenellm.inference.scene_graphs`: one forward pass per video and the ranked triplet
  table (shared with the evaluate stage);
- :mod:`~scenellm.inference.bundle`: the packaged model folder, written at registration;
- :mod:`~scenellm.inference.predictor`: requests (data root, video, mode) → triplets;
- :mod:`~scenellm.inference.batch`: resumable sharded batch prediction to one file;
- :mod:`~scenellm.inference.show`: frames with boxes and relations as a GIF or HTML page.
"""
