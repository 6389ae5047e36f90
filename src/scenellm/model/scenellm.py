"""SceneLLM: detector features → VQ tokens → SIA frame tokens → OT scene tokens → LLM
(LoRA) → SGG predictor. Our reading of arXiv 2412.11026 (DESIGN §2).

Ablation switches (``model.tokens``, ``model.temporal``, ``llm.mode``) select the paper's
variants: continuous tokens instead of VQ codes, mean or no temporal aggregation instead of
OT, and full / frozen / no LLM instead of LoRA. Component slots (``model.spatial``,
``model.head``, ``model.fusion``) take modules of the neighbouring methods by name
(:mod:`scenellm.model.components`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from scenellm.model.components.fusion.motion import Tracks
from scenellm.model.components.spatial import SPATIAL
from scenellm.model.llm import SceneLanguageModel
from scenellm.model.ot import OTAggregator, code_histogram
from scenellm.model.predictor import SGGPredictor, sgcls_labels
from scenellm.model.vqvae import VQVAE


@dataclass
class SceneLLMConfig:
    feature_dim: int
    tokens: str = "vq"
    temporal: str = "ot"
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
        self.ot = (OTAggregator(code_dim, d, config.num_scene_tokens, config.ot_epsilon,
                                config.ot_max_iter, config.ot_tol)
                   if config.temporal == "ot" else None)
        self.llm = SceneLanguageModel(config.llm_path, token_dim=d, mode=config.llm_mode,
                                      lora_rank=config.lora_rank, lora_alpha=config.lora_alpha,
                                      lora_dropout=config.lora_dropout,
                                      target_modules=config.lora_target_modules,
                                      prompt=config.llm_prompt)
        if self.sia.reads_text:
            self.sia.attach_text(self.llm.hidden_size)
        self.predictor = SGGPredictor(obj_dim=d, union_dim=config.feature_dim,
                                      context_dim=self.llm.hidden_size, d_model=d,
                                      num_layers=config.decoder_layers,
                                      gate_alpha=config.gate_alpha, head=config.head,
                                      head_options=config.head_options, fusion=config.fusion,
                                      fusion_options=config.fusion_options)

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

    def forward(self, batch, mode: str = "predcls") -> dict[str, torch.Tensor]:
        """Logits for every pair of the batch (see :class:`VideoBatch`)."""
        x = (batch.obj_feats - self.feat_mean) / self.feat_std  # (N, F)
        with torch.no_grad():
            codes = self.vqvae.encode(x)  # (N,)
            quantized = self.vqvae.codebook.embed[codes]  # (N, D)
        tokens = self.token_proj(quantized if self.config.tokens == "vq" else x)  # (N, d)
        frame_tokens, obj_states = self.sia(tokens, batch.boxes_norm, batch.frame_of_obj,
                                            batch.num_frames_total, return_objects=True,
                                            text=self.llm.prompt_embedding()
                                            if self.sia.reads_text else None)
        padded = frame_tokens.new_zeros(batch.num_videos, batch.max_frames, frame_tokens.shape[1])
        padded[batch.video_of_frame, batch.frame_pos] = frame_tokens  # (B, T, d)
        mask = batch.frame_mask  # (B, T) True = real frame
        if self.config.temporal == "ot":
            padded_codes = torch.full((batch.num_videos, batch.max_objects), -1,
                                      dtype=torch.long, device=codes.device)
            padded_codes[batch.video_of_obj, batch.obj_pos] = codes  # (B, L)
            hist = code_histogram(padded_codes, self.vqvae.codebook.embed.shape[0],
                                  self.ot.smoothing)
            padded, _ = self.ot(padded, mask, hist, self.vqvae.codebook.embed)
        elif self.config.temporal == "mean":
            mean = (padded * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, d)
            padded = torch.where(mask[..., None], padded + mean[:, None], padded)
        hidden = self.llm(padded, mask)  # (B, T, H)
        object_logits = self.predictor.classify_objects(obj_states)
        labels = batch.labels if mode == "predcls" else sgcls_labels(object_logits,
                                                                     batch.is_person)
        out = self.predictor(obj_states, batch.boxes_norm, labels, batch.pair_idx,
                             batch.union_feats, video_of_pair=batch.video_of_pair,
                             context=hidden, context_padding_mask=~mask,
                             context_pos_of_pair=batch.frame_pos[batch.frame_of_pair],
                             tracks=Tracks(batch.frame_of_obj, batch.video_of_obj))
        out["object_logits"] = object_logits
        out["labels"] = labels
        return out
