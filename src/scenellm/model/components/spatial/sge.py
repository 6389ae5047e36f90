"""``sge``: LLaVA-SG's Scene Graph Expression module (arXiv 2408.16224, §3.2) as a spatial
aggregator.

Entity nodes are the frame's objects, h_i = W [token_i ; MLP(geometry(box_i))] (the detector's
pooled features stand in for LLaVA-SG's grounding + segmentation entities). Message passing
over the complete graph of each frame encodes relations:

    m_ij = MLP_e([h_i ; h_j ; geometry(b_i) − geometry(b_j)])
    h_i ← LN(h_i + mean_{j ≠ i, same frame} m_ij)                (``rounds`` times)

The prompt's text embedding T (L, text_dim) is injected by attention and activates the
prompt-relevant nodes:

    q_i = W_q h_i,  K = W_k T,  V = W_v T
    c_i = softmax(q_i Kᵀ / √d) V                    what the prompt says to node i
    r_i = σ(q_i · mean_l K_l / √d + b)              node i's relevance to the prompt, in (0, 1)
    h_i ← h_i + r_i · W_o c_i

A frame token is the relevance-weighted mean Σ r_i h_i / Σ r_i of its nodes, projected.
Without an LLM prompt (``llm.mode=none`` or an empty prompt) a learned text token stands in
for T. Ours to choose: the edge MLP, the relevance score and the pooling; LLaVA-SG's staged
training (SGE alone before fine-tuning) is not reproduced: SGE trains with the rest in
phases (b) and (c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from scenellm.model.components.registry import option
from scenellm.model.components.spatial.nodes import NodeEmbedding, pool_frames, same_frame
from scenellm.model.sia import BOX_GEOMETRY_DIM, box_geometry


@dataclass
class SGEConfig:
    rounds: int = option(2, "Message-passing rounds among a frame's entity nodes.")


class PromptInjection(nn.Module):
    """Nodes attend to the prompt's tokens; returns updated nodes and relevance r (N,)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, h: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h (N, d), text (L, d) already projected to d → (N, d), (N,)."""
        q, k, v = self.query(h), self.key(text), self.value(text)  # (N, d), (L, d), (L, d)
        scale = math.sqrt(self.dim)
        context = torch.softmax(q @ k.T / scale, dim=-1) @ v  # (N, d)
        relevance = torch.sigmoid(q @ k.mean(0) / scale + self.bias)  # (N,)
        return h + relevance[:, None] * self.out(context), relevance


class SceneGraphExpression(nn.Module):
    reads_text = True

    def __init__(self, config: SGEConfig, token_dim: int, out_dim: int) -> None:
        super().__init__()
        self.embed = NodeEmbedding(token_dim, out_dim)
        self.edge = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * out_dim + BOX_GEOMETRY_DIM, out_dim), nn.ReLU(),
                          nn.Linear(out_dim, out_dim)) for _ in range(config.rounds))
        self.norms = nn.ModuleList(nn.LayerNorm(out_dim) for _ in range(config.rounds))
        self.inject = PromptInjection(out_dim)
        self.text_proj: nn.Module | None = None  # set by attach_text once the LLM is known
        self.learned_text = nn.Parameter(0.02 * torch.randn(1, out_dim))
        self.frame_proj = nn.Linear(out_dim, out_dim)
        self.empty_token = nn.Parameter(0.02 * torch.randn(out_dim))

    def attach_text(self, text_dim: int) -> None:
        """Project the LLM's prompt embeddings (width ``text_dim``) to the node width."""
        self.text_proj = nn.Sequential(nn.LayerNorm(text_dim),
                                       nn.Linear(text_dim, self.learned_text.shape[1]))

    def message_passing(self, h: torch.Tensor, boxes: torch.Tensor,
                        frame_of_obj: torch.Tensor) -> torch.Tensor:
        src, dst = same_frame(frame_of_obj).nonzero().unbind(1)  # (E,) edges i → j, i ≠ j
        delta = box_geometry(boxes)[dst] - box_geometry(boxes)[src]  # (E, 9)
        count = torch.bincount(dst, minlength=len(h)).clamp(min=1).to(h.dtype)  # (N,)
        for edge, norm in zip(self.edge, self.norms, strict=True):
            m = edge(torch.cat([h[dst], h[src], delta.to(h.dtype)], dim=-1))  # (E, d)
            h = norm(h + h.new_zeros(h.shape).index_add_(0, dst, m) / count[:, None])
        return h

    def forward(self, obj_tokens, boxes, frame_of_obj, num_frames, return_objects=False,
                text: torch.Tensor | None = None):
        """Same contract as :meth:`scenellm.model.sia.SpatialAggregator.forward`, plus
        ``text`` (L, text_dim), the prompt's embeddings, or None."""
        h = self.message_passing(self.embed(obj_tokens, boxes), boxes, frame_of_obj)  # (N, d)
        if text is None or self.text_proj is None or len(text) == 0:
            prompt = self.learned_text
        else:
            prompt = self.text_proj(text.to(h.dtype))  # (L, d)
        h, relevance = self.inject(h, prompt.to(h.dtype))
        has_objects = torch.bincount(frame_of_obj, minlength=num_frames) > 0  # (F,)
        pooled = self.frame_proj(pool_frames(h, frame_of_obj, num_frames, relevance))  # (F, d)
        frame_tokens = torch.where(has_objects[:, None], pooled, self.empty_token.to(h.dtype))
        return (frame_tokens, h) if return_objects else frame_tokens
