"""``moe``: MoE-VRD's sparsely gated mixture of expert relation classifiers (Shaik et al.,
"MoE-VRD", 2024), with the sparse gate of Shazeer et al. 2017 (arXiv 1701.06538).

For a pair feature x (d,), E small experts f_e: d → 26 predicate logits, and a gate

    h = x W_g  (+ ε ⊙ softplus(x W_n), ε ~ N(0, 1), in training only)
    G(x) = softmax(TopK(h, k))            (entries outside the top k are −∞ → weight 0)
    y = Σ_{e ∈ TopK} G(x)_e f_e(x)        only the k chosen experts run on x

Load balancing (Switch Transformer, Fedus et al. 2022, eq. 4), over the P pairs of a batch:

    f_e = (1 / (P k)) Σ_x 1[e ∈ TopK(x)]     share of routing slots sent to e   (load)
    p_e = (1 / P) Σ_x softmax(x W_g)_e        mean router probability of e     (importance)
    L_aux = E Σ_e f_e p_e                     1 when balanced, up to E when one expert wins

``aux_loss`` = ``aux_weight`` · L_aux joins the training loss. Expert utilisation (f_e summed
since the last reset) is reported by :meth:`MoEHeads.diagnostics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scenellm.data.vocab import ATTENTION, CONTACTING, SPATIAL
from scenellm.model.components.registry import option

KIND_SIZES = (len(ATTENTION), len(SPATIAL), len(CONTACTING))


@dataclass
class MoEConfig:
    num_experts: int = option(4, "E, expert heads.")
    top_k: int = option(2, "k, experts run per pair (1 ≤ k ≤ E).")
    hidden_dim: int = option(64, "Hidden width of each expert's MLP.")
    noisy_gating: bool = option(True, "Add learned Gaussian noise to the gate in training.")
    aux_weight: float = option(0.01, "Weight of the load-balancing loss in the training loss.")


def top_k_gates(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse gate weights (P, E), softmax over each row's top k logits, and the chosen
    experts (P, k)."""
    top, chosen = logits.topk(k, dim=-1)  # (P, k)
    gates = torch.zeros_like(logits).scatter(-1, chosen, torch.softmax(top, dim=-1))
    return gates, chosen


def load_balancing_loss(logits: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """L_aux = E Σ_e f_e p_e from router logits (P, E) and chosen experts (P, k)."""
    num_experts = logits.shape[-1]
    load = F.one_hot(chosen, num_experts).float().sum(dim=(0, 1)) / chosen.numel()  # (E,)
    importance = torch.softmax(logits.float(), dim=-1).mean(0)  # (E,)
    return num_experts * (load * importance).sum()


class MoEHeads(nn.Module):
    def __init__(self, config: MoEConfig, d_model: int) -> None:
        super().__init__()
        if not 1 <= config.top_k <= config.num_experts:
            raise ValueError(f"model.head_options: top_k ({config.top_k}) must lie in "
                             f"[1, num_experts = {config.num_experts}]")
        self.config = config
        out = sum(KIND_SIZES)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, config.hidden_dim), nn.ReLU(),
                          nn.Linear(config.hidden_dim, out)) for _ in range(config.num_experts))
        self.router = nn.Linear(d_model, config.num_experts, bias=False)
        self.noise = nn.Linear(d_model, config.num_experts, bias=False)
        nn.init.zeros_(self.router.weight)  # uniform routing at the start
        nn.init.zeros_(self.noise.weight)
        self.register_buffer("routed", torch.zeros(config.num_experts), persistent=False)

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router logits (P, E) (noisy in training), sparse gates (P, E), chosen (P, k)."""
        logits = self.router(x)
        if self.training and self.config.noisy_gating:
            logits = logits + torch.randn_like(logits) * F.softplus(self.noise(x))
        gates, chosen = top_k_gates(logits, self.config.top_k)
        return logits, gates, chosen

    def forward(self, fused: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, gates, chosen = self.route(fused)
        y = fused.new_zeros(len(fused), sum(KIND_SIZES))  # (P, 26)
        for e, expert in enumerate(self.experts):
            rows = (chosen == e).any(-1).nonzero().squeeze(1)  # pairs routed to e
            if len(rows):
                y = y.index_add(0, rows, gates[rows, e, None].to(y.dtype) * expert(fused[rows]))
        with torch.no_grad():
            self.routed += F.one_hot(chosen, self.config.num_experts).sum(dim=(0, 1))
        attention, spatial, contacting = y.split(KIND_SIZES, dim=-1)
        aux = (self.config.aux_weight * load_balancing_loss(logits, chosen)
               if len(fused) else fused.sum() * 0.0)
        return {"attention_logits": attention, "spatial_logits": spatial,
                "contacting_logits": contacting, "aux_loss": aux}

    def diagnostics(self) -> dict[str, float]:
        """Share of routing slots per expert since the last reset, and its entropy / log E
        (1 = all experts used equally)."""
        total = float(self.routed.sum())
        if total == 0:
            return {}
        share = (self.routed / total).cpu()
        entropy = float(-(share * share.clamp(min=1e-12).log()).sum())
        out = {f"moe_expert{e}_share": float(s) for e, s in enumerate(share)}
        out["moe_usage_entropy"] = entropy / float(torch.log(torch.tensor(len(share))))
        return out

    def reset_diagnostics(self) -> None:
        self.routed.zero_()
