"""Components of SceneLLM's slots, selected by name in params (no code edits to switch):

- ``spatial`` (``model.spatial``): objects of a frame → frame token and object states:
  ``sia`` (SceneLLM), ``rgt`` (SPADE's relational graph transformer), ``sge`` (LLaVA-SG's
  scene graph expression).
- ``heads`` (``model.head``): fused pair features → predicate logits: ``mlp`` (SceneLLM's
  linear heads), ``moe`` (MoE-VRD's sparsely gated experts).
- ``fusion`` (``model.fusion``): pair query and decoded LLM context → fused pair feature:
  ``gate`` (SceneLLM's α), ``adaptive`` (VEGA-3D's token-level gate over a box-motion stream).
"""
