"""SGG predictor: pair queries read the LLM's reasoning and give the three predicate kinds.

SceneLLM (arXiv 2412.11026): one query per (person, object) pair, built from both
objects' tokens, the union-box feature, box geometry and class embeddings. Appearance (the
tokens and the union feature) and geometry (with the class embeddings) pass through their
own MLPs, whose sum is layer-normalised: the geometry, standardised by its training
statistics (:meth:`SGGPredictor.fit_geometry`), gets a deeper MLP of its own, so that the
few geometry columns are not drowned by hundreds of appearance columns. A transformer
decoder attends from a video's pair queries to that video's LLM hidden states; a gate mixes
query and decoded context,

    fused = α · query + (1 − α) · decoded        (paper: α = 0.5),

and linear heads give attention (3, softmax), spatial (6, sigmoid) and contacting
(17, sigmoid) logits; an object-class head over object tokens serves SGCLS. The fusion and
the heads are slots (``model.fusion``, ``model.head``) filled from
:mod:`scenellm.model.components`. With ``model.pair_window`` a query's input also holds the
geometry of its object, with the person, in the window's other frames
(:func:`~scenellm.model.geometry.track_geometry`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scenellm.data.vocab import PERSON_ID
from scenellm.model.components.fusion import FUSIONS
from scenellm.model.components.fusion.motion import Tracks
from scenellm.model.components.heads import HEADS
from scenellm.model.geometry import PAIR_GEOMETRY_DIM, pair_geometry

GEOMETRY_MIN_STD = 1e-2  # floor of a geometry column's spread in fit_geometry


def sinusoidal_embedding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sinusoids: (...,) long positions → (..., dim) [sin(p ω_k) ; cos(p ω_k)]."""
    half = (dim + 1) // 2
    freq = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half
    )
    angle = positions.float()[..., None] * freq  # (..., half)
    return torch.cat([angle.sin(), angle.cos()], dim=-1)[..., :dim]


def pad_by_video(
    x: torch.Tensor, video_of_pair: torch.Tensor, num_videos: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scatter flat pair rows into a padded per-video batch, keeping their order.

    Args:
        x: (P, D) pair rows; video_of_pair: (P,) long in [0, num_videos).

    Returns:
        padded (B, P_max, D), padding_mask (B, P_max) True at padding, and slot (P,) so that
        ``padded[video_of_pair, slot] == x``.
    """
    counts = torch.bincount(video_of_pair, minlength=num_videos)  # (B,)
    if len(counts) > num_videos:
        raise ValueError(f"video_of_pair has index >= number of context rows ({num_videos})")
    order = torch.argsort(video_of_pair, stable=True)
    start = torch.cumsum(counts, dim=0) - counts
    slot = torch.empty_like(video_of_pair)
    slot[order] = torch.arange(len(order), device=x.device) - start[video_of_pair[order]]
    p_max = int(counts.max())
    padded = x.new_zeros(num_videos, p_max, x.shape[1])
    padded[video_of_pair, slot] = x
    padding_mask = torch.arange(p_max, device=x.device)[None] >= counts[:, None]
    return padded, padding_mask, slot


def _unmask_first_if_all_masked(padding_mask: torch.Tensor) -> torch.Tensor:
    """A row whose keys are all padding makes softmax NaN; let it see key 0 instead.

    Such rows are padding queries of a video without pairs (discarded afterwards) or a
    fully padded context, which callers should not pass.
    """
    mask = padding_mask.clone()
    mask[mask.all(dim=1), 0] = False
    return mask


def _slot_names(state_dict, prefix, *args) -> None:
    """Weights saved before the fusion and heads became slots load into them."""
    for old, new in (("gate.", "fusion.gate."), ("attention_head.", "head.attention_head."),
                     ("spatial_head.", "head.spatial_head."),
                     ("contacting_head.", "head.contacting_head.")):
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            state_dict[prefix + new + key.removeprefix(prefix + old)] = state_dict.pop(key)


def sgcls_labels(object_logits: torch.Tensor, is_person: torch.Tensor) -> torch.Tensor:
    """STTran's SGCLS labels: persons stay ``PERSON_ID``, others take the best object class.

    Args:
        object_logits: (N, C) logits over STTran ids (0 = background, 1 = person).
        is_person: (N,) bool.

    Returns:
        (N,) long labels; non-persons in [2, C).
    """
    labels = object_logits[:, PERSON_ID + 1 :].argmax(dim=-1) + PERSON_ID + 1
    return torch.where(is_person, torch.full_like(labels, PERSON_ID), labels)


class SGGPredictor(nn.Module):
    """Pair queries → transformer decoder over LLM states → gated fusion → predicate heads.

    Args:
        obj_dim: width of object tokens.
        union_dim: width of union-box features.
        context_dim: width of the LLM hidden states.
        d_model: width of queries and decoder.
        num_heads: attention heads of the decoder.
        num_layers: decoder layers.
        num_object_classes: object classes incl. background (STTran ids).
        gate_alpha: α of the fusion, or its initial value when ``learn_gate``.
        learn_gate: α = σ(W [query; decoded] + b) per pair and channel, starting at gate_alpha.
        dropout: dropout of the query MLP, decoder and object head.
        head, head_options: predicate heads by registry name and their config fields.
        fusion, fusion_options: fusion by registry name and its config fields.
        pair_state_dim: width of per-pair LLM states (the pair's own, or its subject's and
            object's concatenated) added to the query through LayerNorm + Linear; 0 when the
            LLM reads frames only.
        track_dim: width of each pair's track geometry (``model.pair_window``, see
            :func:`~scenellm.model.geometry.track_geometry`) joined to the query's input; 0
            when the query sees its own frame only.
    """

    def __init__(
        self,
        obj_dim: int,
        union_dim: int,
        context_dim: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 1,
        num_object_classes: int = 37,
        gate_alpha: float = 0.5,
        learn_gate: bool = False,
        dropout: float = 0.1,
        head: str = "mlp",
        head_options: dict | None = None,
        fusion: str = "gate",
        fusion_options: dict | None = None,
        pair_state_dim: int = 0,
        track_dim: int = 0,
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        if not (0.0 < gate_alpha < 1.0 if learn_gate else 0.0 <= gate_alpha <= 1.0):
            raise ValueError(f"gate_alpha {gate_alpha} out of range (open (0, 1) if learned)")
        self.d_model = d_model
        self.gate_alpha = gate_alpha
        class_dim = d_model // 4
        self.class_embedding = nn.Embedding(num_object_classes, class_dim)
        self.track_dim = track_dim
        geometry_dim = PAIR_GEOMETRY_DIM + track_dim
        # the geometry's per-column mean and spread on the training pairs (fit_geometry)
        self.register_buffer("geometry_mean", torch.zeros(geometry_dim))
        self.register_buffer("geometry_std", torch.ones(geometry_dim))
        self.appearance_mlp = nn.Sequential(
            nn.Linear(2 * obj_dim + union_dim, d_model),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(d_model, d_model),
        )
        geometry_hidden = 2 * d_model
        self.geometry_mlp = nn.Sequential(
            nn.Linear(geometry_dim + 2 * class_dim, geometry_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(geometry_hidden, geometry_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(geometry_hidden, d_model),
        )
        self.query_norm = nn.LayerNorm(d_model)
        self.pair_state_proj = (
            nn.Sequential(nn.LayerNorm(pair_state_dim), nn.Linear(pair_state_dim, d_model))
            if pair_state_dim else None
        )
        # LLM hidden states can be large (LLaMA); normalise before projecting.
        self.context_proj = nn.Sequential(
            nn.LayerNorm(context_dim), nn.Linear(context_dim, d_model)
        )
        layer = nn.TransformerDecoderLayer(
            d_model, num_heads, 4 * d_model, dropout, batch_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, num_layers)
        # built in the order the gate and heads always were, so default weights are unchanged
        self.fusion = FUSIONS.build(fusion, fusion_options, d_model=d_model,
                                    gate_alpha=gate_alpha, learn_gate=learn_gate)
        self.head = HEADS.build(head, head_options, d_model=d_model)
        self._register_load_state_dict_pre_hook(_slot_names)
        self.object_head = nn.Sequential(
            nn.Linear(obj_dim, d_model), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(d_model, num_object_classes),
        )  # fmt: skip

    def classify_objects(self, obj_tokens: torch.Tensor) -> torch.Tensor:
        """(N, obj_dim) → (N, num_object_classes) object-class logits."""
        return self.object_head(obj_tokens)

    def pair_query(self, obj_tokens: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
                   pair_idx: torch.Tensor, union_feats: torch.Tensor,
                   track: torch.Tensor | None = None) -> torch.Tensor:
        """(P, d_model) pair queries from both objects' tokens, the union-box feature, the
        pair's geometry, both class embeddings and, when built with ``track_dim``, the
        pair's track geometry (arguments as in :meth:`forward`)."""
        if (track is None) != (self.track_dim == 0):
            raise ValueError(f"this predictor reads track geometry of width {self.track_dim}; "
                             f"got {None if track is None else track.shape[-1]}")
        sub, obj = pair_idx.unbind(dim=1)
        appearance = torch.cat([obj_tokens[sub], obj_tokens[obj], union_feats], dim=-1)
        geometry = self.geometry(boxes, pair_idx, track).to(obj_tokens.dtype)
        geometry = (geometry - self.geometry_mean) / self.geometry_std
        classes = torch.cat([self.class_embedding(labels[sub]), self.class_embedding(labels[obj])],
                            dim=-1)
        return self.query_norm(self.appearance_mlp(appearance)
                               + self.geometry_mlp(torch.cat([geometry, classes], dim=-1)))

    @staticmethod
    def geometry(boxes: torch.Tensor, pair_idx: torch.Tensor,
                 track: torch.Tensor | None) -> torch.Tensor:
        """(P, PAIR_GEOMETRY_DIM + track_dim) the pairs' geometry and track, unscaled."""
        sub, obj = pair_idx.unbind(dim=1)
        own = pair_geometry(boxes[sub], boxes[obj])
        return own if track is None else torch.cat([own, track.to(own.dtype)], dim=-1)

    @torch.no_grad()
    def fit_geometry(self, rows: torch.Tensor) -> None:
        """Standardise the query's geometry by the mean and spread of ``rows`` (M, G), the
        training pairs' :meth:`geometry`: box coordinates spread by a few hundredths and log
        ratios by units, so unscaled they reach the MLP at very different strengths. The
        spread is floored at ``GEOMETRY_MIN_STD`` (a column constant in training)."""
        if rows.shape[1] != len(self.geometry_mean):
            raise ValueError(f"geometry rows have {rows.shape[1]} columns; this predictor "
                             f"reads {len(self.geometry_mean)}")
        if len(rows) < 2:
            raise ValueError("fit_geometry needs at least 2 training pairs")
        rows = rows.to(self.geometry_mean.device, torch.float64)
        self.geometry_mean.copy_(rows.mean(dim=0))
        self.geometry_std.copy_(rows.std(dim=0).clamp(min=GEOMETRY_MIN_STD))

    def forward(
        self,
        obj_tokens: torch.Tensor,
        boxes: torch.Tensor,
        labels: torch.Tensor,
        pair_idx: torch.Tensor,
        union_feats: torch.Tensor,
        video_of_pair: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_padding_mask: torch.Tensor | None = None,
        context_pos_of_pair: torch.Tensor | None = None,
        predict_objects: bool = False,
        tracks: Tracks | None = None,
        pair_states: torch.Tensor | None = None,
        track: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """Predict predicate logits for every (person, object) pair.

        Args:
            obj_tokens: (N, obj_dim) object tokens of the batch.
            boxes: (N, 4) xyxy boxes normalised to [0, 1].
            labels: (N,) long STTran class ids (predicted ones in SGCLS, see sgcls_labels).
            pair_idx: (P, 2) long (person index, object index) into N.
            union_feats: (P, union_dim) union-box features.
            video_of_pair: (P,) long batch row of each pair; needed with context.
            context: (B, T, context_dim) LLM hidden states, or None to skip the decoder.
            context_padding_mask: (B, T) bool, True where the context is padding.
            context_pos_of_pair: (P,) long, optional position in its video's context of the
                pair's frame token; adds sinusoidal positions to queries and context so a
                pair can find its own frame.
            predict_objects: also return object-class logits.
            tracks: frame and video of every object, for fusions that read motion.
            pair_states: (P, pair_state_dim) the LLM's states of each pair, when the
                predictor was built with ``pair_state_dim``.
            track: (P, track_dim) each pair's track geometry, when the predictor was built
                with ``track_dim``.

        Returns:
            attention_logits (P, 3), spatial_logits (P, 6), contacting_logits (P, 17),
            object_logits (N, num_object_classes) or None, and the head's aux_loss if any.
        """
        query = self.pair_query(obj_tokens, boxes, labels, pair_idx, union_feats, track)
        if self.pair_state_proj is not None:
            if pair_states is None:
                raise ValueError("this predictor reads pair_states; pass the LLM's pair states")
            query = query + self.pair_state_proj(pair_states.to(query.dtype))
        decoded = None
        if context is not None and len(query):
            if video_of_pair is None:
                raise ValueError("video_of_pair is required when context is given")
            decoded = self._decode(
                query, video_of_pair, context, context_padding_mask, context_pos_of_pair
            )
        fused = self.fusion(query, decoded, motion=(boxes, pair_idx, tracks))
        return {
            **self.head(fused),
            "object_logits": self.classify_objects(obj_tokens) if predict_objects else None,
        }

    def _decode(
        self,
        query: torch.Tensor,
        video_of_pair: torch.Tensor,
        context: torch.Tensor,
        context_padding_mask: torch.Tensor | None,
        context_pos_of_pair: torch.Tensor | None,
    ) -> torch.Tensor:
        """Each video's pair queries attend to that video's context only → (P, d_model)."""
        memory = self.context_proj(context)  # (B, T, d_model)
        tgt = query
        if context_pos_of_pair is not None:
            positions = torch.arange(memory.shape[1], device=memory.device)
            memory = memory + sinusoidal_embedding(positions, self.d_model).to(memory.dtype)
            tgt = query + sinusoidal_embedding(context_pos_of_pair, self.d_model).to(query.dtype)
        padded, pair_padding, slot = pad_by_video(tgt, video_of_pair, context.shape[0])
        if context_padding_mask is not None:
            context_padding_mask = _unmask_first_if_all_masked(context_padding_mask.bool())
        out = self.decoder(
            padded,
            memory,
            tgt_key_padding_mask=_unmask_first_if_all_masked(pair_padding),
            memory_key_padding_mask=context_padding_mask,
        )  # (B, P_max, d_model)
        return out[video_of_pair, slot]
