"""The ablation grid of ``params/ablate.yaml``: typed, validated, turned into cells."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scenellm.errors import UserError

FULL = "full"


class AblateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: int = Field(3, ge=1, le=20, description="Seeds per variant.")
    seed_key: str = Field("finetune.seed", description="The params key each seed sets.")
    bootstrap_samples: int = Field(2000, ge=100, description="Video resamples per interval.")
    grids: dict[str, dict[str, dict[str, Any]]] = Field(
        description="Grid name → variant name → params overrides (section.key: value).")

    @field_validator("grids")
    @classmethod
    def _full_first(cls, grids: dict) -> dict:
        for name, variants in grids.items():
            if FULL not in variants:
                raise ValueError(f"grid '{name}' has no '{FULL}' variant to compare with")
        return grids


@dataclass(frozen=True)
class Cell:
    variant: str
    seed: int
    overrides: tuple[str, ...]  # --set style, the seed last

    @property
    def name(self) -> str:
        return f"{self.variant}-seed{self.seed}"


def load_ablate(path: Path) -> AblateConfig:
    from scenellm.config.sources import load_validated

    return load_validated(path, AblateConfig,
                          "not found; `scenellm ablate` reads its grid from there.")


def cells(config: AblateConfig, grid: str, seeds: int | None = None) -> list[Cell]:
    """Every (variant, seed) of ``grid``, the full model first."""
    if grid not in config.grids:
        raise UserError(f"ablate.yaml has no grid '{grid}'; choose one of: "
                        f"{', '.join(config.grids)}.")
    variants = config.grids[grid]
    order = [FULL, *(v for v in variants if v != FULL)]
    out = []
    for variant in order:
        sets = tuple(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                     for k, v in variants[variant].items())
        for seed in range(seeds or config.seeds):
            out.append(Cell(variant, seed, (*sets, f"{config.seed_key}={seed}")))
    return out
