"""SceneLLM: detector features → VQ tokens → SIA frame tokens → OT scene tokens → LLM
(LoRA) → SGG predictor. Our reading of arXiv 2412.11026 (DESIGN §2).

Ablation switches (``model.tokens``, ``model.temporal``, ``llm.mode``) select the paper's
variants: continuous tokens instead of VQ codes (the VQ-VAE is then never run), mean or no
temporal aggregation instead of OT, and full / frozen / no LLM instead of LoRA.
``model.context=frame`` runs every frame as its own one-frame video, so no information
crosses frames anywhere (the per-frame variant; every frame is then its own video, so a
``model.pair_window`` finds no other frame); ``model.pair_window`` gives each pair query the
geometry of its object, followed by its ground-truth class as the windowed trees follow it
(in SGCLS too), in frames t + k of the window; ``model.language`` chooses what the LLM
reads (see :mod:`scenellm.model.sentence`); ``ot.source`` chooses what OT transports: the
sequence of frame tokens (:mod:`scenellm.model.ot_frames`) or the video's histogram of VQ
codes (:mod:`scenellm.model.ot`).
Component slots (``model.spatial``, ``model.head``, ``model.fusion``) take modules of the
neighbouring methods by name (:mod:`scenellm.model.components`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from scenellm.data.vocab import KINDS, STTRAN_OBJECT_CLASSES
from scenellm.model.components.fusion.motion import Tracks
from scenellm.model.components.spatial import SPATIAL
from scenellm.model.geometry import track_geometry, track_geometry_dim
from scenellm.model.llm import SceneLanguageModel
from scenellm.model.ot import OTAggregator, code_histogram
from scenellm.model.ot_frames import FrameOTAggregator
from scenellm.model.predictor import SGGPredictor, sgcls_labels, sinusoidal_embedding
from scenellm.model.sentence import sentence_slots
from scenellm.model.vqvae import VQVAE

PROBES: tuple[str, ...] = ("shuffle_frames", "ot_off", "swap_states")


def shuffled_frames(batch, seed: int = 0):
    """The batch with each video's frame positions permuted (objects and pairs stay with
    their frames): what reads frames in order sees them out of order."""
    generator = torch.Generator().manual_seed(seed)
    frame_pos = batch.frame_pos.clone()
    for v in range(batch.num_videos):
        frames = (batch.video_of_frame == v).nonzero().squeeze(1)
        perm = torch.randperm(len(frames), generator=generator).to(frames.device)
        frame_pos[frames] = batch.frame_pos[frames][perm]
    return replace(batch, frame_pos=frame_pos)


def adjust_logits(out: dict, prior: list[float] | None, tau: float) -> dict:
    """Post-hoc logit adjustment (Menon et al., ICLR 2021): each kind's logits minus
    τ · log(prior), the predicate's share of the training pairs. Under STTran's "with"
    constraint a pair keeps one predicate per kind, so of two labels that co-occur (carrying
    always comes with holding) the frequent one wins unless the rare one is boosted.

    Returns the adjusted attention, spatial and contacting logits (nothing when τ is 0).
    """
    if not tau:
        return {}
    if prior is None:
        raise ValueError("model.logit_adjust needs the training pairs' predicate_prior")
    log_prior = torch.log(torch.tensor(prior, dtype=torch.float32))
    adjusted, start = {}, 0
    for kind, names in KINDS.items():
        logits = out[f"{kind}_logits"]
        shift = tau * log_prior[start:start + len(names)].to(logits.device, logits.dtype)
        adjusted[f"{kind}_logits"] = logits - shift
        start += len(names)
    return adjusted


@dataclass
class SceneLLMConfig:
    feature_dim: int
    tokens: str = "vq"
    temporal: str = "ot"
    context: str = "video"
    language: str = "frames"
    ot_source: str = "frames"
    d_model: int = 128
    sia_groups: int = 3
    decoder_layers: int = 1
    gate_alpha: float = 0.5
    num_scene_tokens: int = 32
    ot_epsilon: float = 0.05
    ot_max_iter: int = 100
    ot_tol: float = 1e-6
    llm_path: str | None = None
    llm_mode: str = "lora"
    llm_prompt: str | None = "Scene:"
    llm_quantization: str = "none"
    llm_gradient_checkpointing: bool = False
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None
    spatial: str = "sia"
    spatial_options: dict = field(default_factory=dict)
    head: str = "mlp"
    head_options: dict = field(default_factory=dict)
    fusion: str = "gate"
    fusion_options: dict = field(default_factory=dict)
    pair_window: tuple[int, int] | None = None
    union: str = "raw"
    logit_adjust: float = 0.0
    # each predicate's share of the training pairs, ATTENTION then SPATIAL then CONTACTING
    # (:func:`~scenellm.model.losses.predicate_prior`); what logit_adjust divides by
    predicate_prior: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class SceneLLM(nn.Module):
    def __init__(self, config: SceneLLMConfig, vqvae: VQVAE, mean: torch.Tensor,
                 std: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.vqvae = vqvae.eval().requires_grad_(False)  # pretrained in phase (a), frozen
        self.register_buffer("feat_mean", mean.clone())
        self.register_buffer("feat_std", std.clone())
        code_dim = vqvae.codebook.embed.shape[1]
        in_dim = code_dim if config.tokens == "vq" else config.feature_dim
        self.token_proj = nn.Sequential(nn.Linear(in_dim, d), nn.LayerNorm(d))
        groups = {"max_groups": config.sia_groups} if config.spatial == "sia" else {}
        self.sia = SPATIAL.build(config.spatial, {**groups, **config.spatial_options},
                                 token_dim=d, out_dim=d)
        if config.temporal != "ot":
            self.ot = None
        elif config.ot_source == "frames":
            self.ot = FrameOTAggregator(d, config.num_scene_tokens, config.ot_epsilon,
                                        config.ot_max_iter, config.ot_tol)
        else:
            self.ot = OTAggregator(code_dim, d, config.num_scene_tokens, config.ot_epsilon,
                                   config.ot_max_iter, config.ot_tol)
        self.class_token = nn.Embedding(len(STTRAN_OBJECT_CLASSES), d)  # an object word's class
        self.llm = SceneLanguageModel(config.llm_path, token_dim=d, mode=config.llm_mode,
                                      lora_rank=config.lora_rank, lora_alpha=config.lora_alpha,
                                      lora_dropout=config.lora_dropout,
                                      target_modules=config.lora_target_modules,
                                      prompt=config.llm_prompt,
                                      quantization=config.llm_quantization,
                                      gradient_checkpointing=config.llm_gradient_checkpointing)
        if self.sia.reads_text:
            self.sia.attach_text(self.llm.hidden_size)
        self.predictor = SGGPredictor(obj_dim=d, union_dim=config.feature_dim,
                                      context_dim=self.llm.hidden_size, d_model=d,
                                      num_layers=config.decoder_layers,
                                      gate_alpha=config.gate_alpha, head=config.head,
                                      head_options=config.head_options, fusion=config.fusion,
                                      fusion_options=config.fusion_options,
                                      pair_state_dim={"frames": 0, "pairs": self.llm.hidden_size,
                                                      "objects": 2 * self.llm.hidden_size
                                                      }[config.language],
                                      track_dim=track_geometry_dim(config.pair_window))
        self.diagnostics: dict[str, float] = {}

    def train(self, mode: bool = True) -> SceneLLM:
        super().train(mode)
        self.vqvae.eval()  # the codebook never updates after pretraining
        return self

    def adapter_parameters(self) -> list[nn.Parameter]:
        """LLM parameters trained in phase (c): LoRA adapters, or all LLM weights (full)."""
        if self.config.llm_mode == "lora":
            return [p for n, p in self.llm.llm.named_parameters() if "lora_" in n]
        if self.config.llm_mode == "full":
            return list(self.llm.llm.parameters())
        return []

    def forward(self, batch, mode: str = "predcls", probe: str | None = None
                ) -> dict[str, torch.Tensor]:
        """Logits for every pair of the batch (see :class:`VideoBatch`).

        ``probe`` perturbs the temporal path to measure what it carries (:data:`PROBES`):
        ``shuffle_frames`` permutes each video's frame order before OT and the LLM (a fixed
        seed), ``ot_off`` skips the temporal aggregation, ``swap_states`` gives every video
        the LLM states of the next video in the batch.
        """
        if probe is not None and probe not in PROBES:
            raise ValueError(f"probe {probe!r} is not one of {PROBES}")
        seq = batch.per_frame() if self.config.context == "frame" else batch
        if probe == "shuffle_frames":
            seq = shuffled_frames(seq)
        x = (seq.obj_feats - self.feat_mean) / self.feat_std  # (N, F)
        codes = None
        if self.config.tokens == "vq" or (self.ot is not None and self.config.ot_source == "codes"):
            with torch.no_grad():
                codes = self.vqvae.encode(x)  # (N,)
        if self.config.tokens == "vq":
            tokens = self.token_proj(self.vqvae.codebook.embed[codes])  # (N, d)
        else:
            tokens = self.token_proj(x)
        frame_tokens, obj_states = self.sia(tokens, seq.boxes_norm, seq.frame_of_obj,
                                            seq.num_frames_total, return_objects=True,
                                            text=self.llm.prompt_embedding()
                                            if self.sia.reads_text else None)
        padded = frame_tokens.new_zeros(seq.num_videos, seq.max_frames, frame_tokens.shape[1])
        padded[seq.video_of_frame, seq.frame_pos] = frame_tokens  # (B, T, d)
        mask = seq.frame_mask  # (B, T) True = real frame
        if probe != "ot_off":
            padded = self.temporal(padded, mask, codes, seq)
        object_logits = self.predictor.classify_objects(obj_states)
        labels = seq.labels if mode == "predcls" else sgcls_labels(object_logits, seq.is_person)
        track = self.track(seq)
        hidden, words, frame_slot, obj_slot = self.read(padded, mask, obj_states, labels, seq,
                                                        track)
        if probe == "swap_states":
            hidden, words = hidden.roll(1, dims=0), words.roll(1, dims=0)
        pair_states = None
        if self.config.language == "objects":
            states = hidden[seq.video_of_obj, obj_slot]  # (N, H)
            sub, obj = seq.pair_idx.unbind(dim=1)
            pair_states = torch.cat([states[sub], states[obj]], dim=-1)  # (P, 2H)
        elif self.config.language == "pairs":
            pair_states = hidden[seq.video_of_pair, obj_slot]  # (P, H)
        union = self.union_features(seq)
        out = self.predictor(obj_states, seq.boxes_norm, labels, seq.pair_idx, union,
                             video_of_pair=seq.video_of_pair, context=hidden,
                             context_padding_mask=~words,
                             context_pos_of_pair=frame_slot[seq.frame_of_pair],
                             pair_states=pair_states, track=track,
                             tracks=Tracks(seq.frame_of_obj, seq.video_of_obj))
        out["object_logits"] = object_logits
        out["labels"] = labels
        if not self.training:
            out.update(adjust_logits(out, self.config.predicate_prior, self.config.logit_adjust))
        return out

    def temporal(self, padded: torch.Tensor, mask: torch.Tensor, codes: torch.Tensor | None,
                 seq) -> torch.Tensor:
        """Frame tokens (B, T, d) after the temporal aggregation ``model.temporal``."""
        if self.config.temporal == "ot" and self.config.ot_source == "frames":
            padded, info = self.ot(padded, mask)
            self.diagnostics["ot_unconverged"] = float((~info["converged"]).float().mean())
        elif self.config.temporal == "ot":
            padded_codes = torch.full((seq.num_videos, seq.max_objects), -1,
                                      dtype=torch.long, device=codes.device)
            padded_codes[seq.video_of_obj, seq.obj_pos] = codes  # (B, L)
            hist = code_histogram(padded_codes, self.vqvae.codebook.embed.shape[0],
                                  self.ot.smoothing)
            padded, info = self.ot(padded, mask, hist, self.vqvae.codebook.embed)
            self.diagnostics["ot_unconverged"] = float((~info["converged"]).float().mean())
        elif self.config.temporal == "mean":
            mean = (padded * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, d)
            padded = torch.where(mask[..., None], padded + mean[:, None], padded)
        return padded

    def union_features(self, seq) -> torch.Tensor:
        """(P, F) union-box features as the pair query reads them (``model.union``): raw, or
        standardized by the object features' mean and std."""
        if self.config.union == "standardized":
            return (seq.union_feats - self.feat_mean) / self.feat_std
        return seq.union_feats

    def fit_geometry(self, batches) -> None:
        """Standardise the pair queries' geometry by that of ``batches``' pairs (the training
        videos), seen as the model sees them (one-frame videos under ``model.context=frame``).
        """
        rows = []
        for batch in batches:
            seq = batch.per_frame() if self.config.context == "frame" else batch
            seq = seq.to(self.predictor.geometry_mean.device)
            rows.append(self.predictor.geometry(seq.boxes_norm, seq.pair_idx, self.track(seq)))
        self.predictor.fit_geometry(torch.cat(rows))

    def track(self, seq) -> torch.Tensor | None:
        """(P, track_dim) geometry of each pair's object in the frames of
        ``model.pair_window``, followed by its ground-truth class (the windowed trees' rule,
        kept in SGCLS); None without a window."""
        if self.config.pair_window is None:
            return None
        return track_geometry(seq.boxes_norm, seq.pair_idx, seq.labels, seq.video_of_pair,
                              seq.frame_pos[seq.frame_of_pair], tuple(self.config.pair_window))

    def read(self, padded: torch.Tensor, mask: torch.Tensor, obj_states: torch.Tensor,
             labels: torch.Tensor, seq, track: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, ...]:
        """The LLM reads each video's sentence (``model.language``): hidden (B, L, H), words
        (B, L) True at real tokens, frame_slot (F,) and the slots (N,) of the objects or
        (P,) of the pairs, or None for frames only."""
        language = self.config.language
        if language == "objects":
            items = obj_states + self.class_token(labels)  # (N, d)
            video_of_item, frame_of_item = seq.video_of_obj, seq.frame_of_obj
        elif language == "pairs":
            items = self.predictor.pair_query(obj_states, seq.boxes_norm, labels, seq.pair_idx,
                                              self.union_features(seq), track)  # (P, d)
            video_of_item, frame_of_item = seq.video_of_pair, seq.frame_of_pair
        else:
            items = video_of_item = frame_of_item = None
        frame_slot, item_slot, length = sentence_slots(
            seq.video_of_frame, seq.frame_pos, video_of_item, frame_of_item, seq.num_videos)
        d = padded.shape[-1]
        frame_tokens = padded[seq.video_of_frame, seq.frame_pos]  # (F, d)
        stamp = sinusoidal_embedding(seq.frame_pos, d).to(frame_tokens.dtype)  # (F, d)
        sentence = frame_tokens.new_zeros(seq.num_videos, length, d)
        words = mask.new_zeros(seq.num_videos, length)
        sentence[seq.video_of_frame, frame_slot] = frame_tokens + stamp
        words[seq.video_of_frame, frame_slot] = True
        if items is not None:
            sentence[video_of_item, item_slot] = (items + stamp[frame_of_item]).to(sentence.dtype)
            words[video_of_item, item_slot] = True
        return self.llm(sentence, words), words, frame_slot, item_slot
