"""A tiny self-contained project (params, flows, synthetic data) for end-to-end tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from scenellm.project import Project

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "detector": {"epochs": 1, "batch_size": 4},
    "detect": {"epochs": 1, "batch_size": 4},
    "vqvae": {"codebook_size": 16, "code_dim": 16, "hidden_dim": 32, "epochs": 2,
              "batch_size": 64},
    "model": {"d_model": 32},
    "ot": {"num_scene_tokens": 4},
    "finetune": {"phase_b_epochs": 1, "phase_c_epochs": 1},
}


def make_project(root: Path, data: Path, extra: dict | None = None) -> Project:
    """Copy params/ (shrunk to TINY sizes, data.root → ``data``) and flows/ into ``root``."""
    shutil.copytree(REPO / "params", root / "params")
    shutil.copytree(REPO / "flows", root / "flows",
                    ignore=shutil.ignore_patterns("__pycache__"))
    sections = {**TINY, "data": {"root": str(data)}}
    for section, values in (extra or {}).items():
        sections[section] = {**sections.get(section, {}), **values}
    for path in (root / "params").glob("*.yaml"):
        content = yaml.safe_load(path.read_text())
        for section, values in sections.items():
            if section in content:
                content[section].update(values)
        path.write_text(yaml.safe_dump(content))
    return Project(root)
