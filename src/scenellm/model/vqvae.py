"""VQ-VAE over detector features: encoder MLP -> EMA codebook -> decoder MLP.

SceneLLM (arXiv 2412.11026) discretises each object's RoI feature into a code of a learned
codebook before spatial and temporal aggregation; this is that quantizer, pretrained alone.
VQ-VAE: van den Oord et al. 2017, https://arxiv.org/abs/1711.00937; EMA codebook as in
Razavi et al. 2019, https://arxiv.org/abs/1906.00446.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scenellm.model.codebook import Codebook, codes_in_use, perplexity

__all__ = ["VQVAE", "VQVAEOutput", "codes_in_use", "perplexity"]


@dataclass
class VQVAEOutput:
    """Result of one VQ-VAE pass; shapes for an input x (..., in_dim)."""

    recon: Tensor  # (..., in_dim) decoder output
    z: Tensor  # (..., code_dim) encoder output
    quantized: Tensor  # (..., code_dim) codes, with straight-through gradient to z
    indices: Tensor  # (...,) code index per vector
    recon_loss: Tensor  # mse(recon, x)
    commit_loss: Tensor  # beta * mse(z, sg[q])
    loss: Tensor  # recon_loss + commit_loss
    perplexity: Tensor  # exp(entropy) of the batch code histogram
    usage: float  # share of the K codes used in the batch
    dead_restarted: int  # codes restarted by this (training) step


def mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))


class VQVAE(nn.Module):
    """x -> z = enc(x) -> q = e_{argmin_k ||z - e_k||} -> x^ = dec(z + sg[q - z]).

    Loss = ||x^ - x||^2 + beta ||z - sg[q]||^2 (means over elements). The codebook term of the
    original loss is replaced by EMA updates, so only the encoder and decoder get gradients.

    Args:
        in_dim: feature dimension of the inputs (e.g. RoI feature size).
        code_dim: D, dimension of the codes (SceneLLM: 512).
        codebook_size: K, number of codes (SceneLLM: 512).
        hidden_dim: hidden width of the encoder and decoder MLPs.
        beta: commitment weight, 0.25 in arXiv 1711.00937 section 3.2.
        decay: EMA decay of the codebook, 0.99 in arXiv 1711.00937 appendix A.1 / 1906.00446.
        dead_threshold: share of the uniform use N / K under which a code restarts.
        kmeans_init: initialise the codebook by k-means on the first training batch.
    """

    def __init__(
        self,
        in_dim: int,
        code_dim: int = 64,
        codebook_size: int = 512,
        hidden_dim: int = 256,
        beta: float = 0.25,
        decay: float = 0.99,
        dead_threshold: float = 0.1,
        kmeans_init: bool = True,
    ) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.hidden_dim = hidden_dim
        self.beta = beta
        self.encoder = mlp(in_dim, hidden_dim, code_dim)
        self.codebook = Codebook(
            codebook_size,
            code_dim,
            decay=decay,
            dead_threshold=dead_threshold,
            kmeans_init=kmeans_init,
        )
        self.decoder = mlp(code_dim, hidden_dim, in_dim)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable; VQVAE.from_config(m.config()) rebuilds m."""
        cb = self.codebook
        return {
            "in_dim": self.in_dim,
            "code_dim": cb.code_dim,
            "codebook_size": cb.codebook_size,
            "hidden_dim": self.hidden_dim,
            "beta": self.beta,
            "decay": cb.decay,
            "dead_threshold": cb.dead_threshold,
            "kmeans_init": cb.kmeans_init,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VQVAE:
        return cls(**config)

    def save_pretrained(self, directory: Path, mean: Tensor, std: Tensor) -> None:
        """``config.json``, ``model.safetensors`` and the feature normaliser
        ``normalizer.safetensors`` (mean (F,), std (F,)) into ``directory``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()},
                  directory / "model.safetensors")
        (directory / "config.json").write_text(json.dumps(self.config(), indent=2,
                                                          sort_keys=True))
        save_file({"mean": mean.contiguous(), "std": std.contiguous()},
                  directory / "normalizer.safetensors")

    @classmethod
    def from_pretrained(cls, directory: Path) -> tuple[VQVAE, Tensor, Tensor]:
        """(VQVAE in eval mode, mean (F,), std (F,)) from a :meth:`save_pretrained` folder."""
        from safetensors.torch import load_file

        directory = Path(directory)
        model = cls.from_config(json.loads((directory / "config.json").read_text()))
        model.load_state_dict(load_file(directory / "model.safetensors"))
        norm = load_file(directory / "normalizer.safetensors")
        return model.eval(), norm["mean"], norm["std"]

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> VQVAEOutput:
        """x (..., in_dim) -> VQVAEOutput; in training mode the codebook takes an EMA step.

        generator (CPU) seeds k-means init and dead-code restarts; default: torch's global RNG.
        """
        z = self.encoder(x)  # (..., D)
        flat_q, flat_idx, stats = self.codebook(z.reshape(-1, z.shape[-1]), generator)  # (N, D)
        q = flat_q.view_as(z)  # (..., D)
        commit_loss = self.beta * F.mse_loss(z, q.detach())
        q_st = z + (q - z).detach()  # straight-through: forward q, backward identity to z
        recon = self.decoder(q_st)  # (..., in_dim)
        recon_loss = F.mse_loss(recon, x)
        return VQVAEOutput(
            recon=recon,
            z=z,
            quantized=q_st,
            indices=flat_idx.view(z.shape[:-1]),  # (...,)
            recon_loss=recon_loss,
            commit_loss=commit_loss,
            loss=recon_loss + commit_loss,
            perplexity=stats["perplexity"],
            usage=stats["usage"],
            dead_restarted=stats["dead_restarted"],
        )

    def encode(self, x: Tensor) -> Tensor:
        """Code indices of x (..., in_dim) -> (...,); never updates the codebook."""
        z = self.encoder(x)  # (..., D)
        return self.codebook.nearest(z.reshape(-1, z.shape[-1])).view(z.shape[:-1])

    def quantize(self, x: Tensor) -> Tensor:
        """Codebook vectors of x (..., in_dim) -> (..., code_dim); no updates, no gradient to them."""
        return self.codebook.embed[self.encode(x)]

    def decode(self, indices: Tensor) -> Tensor:
        """Reconstruct features from code indices (...,) -> (..., in_dim)."""
        return self.decoder(self.codebook.embed[indices])
