"""``dvc.yaml`` generated from the stage declarations, and where DVC reads each stage.

For every stage in pipeline order: the command (``scenellm stage NAME --publish
outputs/NAME --metrics metrics/NAME.json``), its deps (``data`` for a stage that reads the
data, ``outputs/U`` for each upstream stage U, every file of its code closure and its
``extra`` files), the params sections it reads (with the params file that holds each), its
output folder and its metrics file. Training histories become ``metrics/history/NAME.json``
plots. ``scenellm dvc yaml`` writes the file; ``tests/stages/test_dvc.py`` fails when the
committed one differs, so neither can drift from the other.

``scenellm run`` and ``dvc repro`` share one set of stage outputs (the fingerprinted store)
and both leave them where DVC reads them (:func:`publish_for_dvc`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from scenellm.stages.code import PACKAGE_ROOT, code_closure

HEADER = ("# Generated from the stage declarations by `scenellm dvc yaml`; do not edit by hand\n"
          "# (tests/stages/test_dvc.py fails when this file and the stages disagree).\n"
          "# Each stage calls the library stage the Prefect flows call; outputs live in the\n"
          "# fingerprinted store under .scenellm/ and are published at the paths below.\n")
HISTORY_PLOTS = {
    "features": {"x": "epoch", "y": ["loss", "accuracy"],
                 "title": "Detector training: loss and accuracy on the training crops"},
    "vqvae": {"x": "epoch", "y": ["recon_mse", "holdout_recon_mse"],
              "title": "VQ-VAE reconstruction per epoch"},
    "detect": {"x": "epoch", "y": ["loss", "focal"],
               "title": "SGDET detection head: loss and its centre heat-map (focal) part"},
    "finetune": {"x": "epoch", "y": ["val_predcls_R@20", "val_predcls_mR@20",
                                     "train_loss_total"],
                 "title": "Fine-tuning: validation PREDCLS R@20 and mR@20, training loss"},
}
HISTORY_FILES = {"features": "detector_history.json"}  # default: history.json
IMAGE_PLOTS = ("outputs/evaluate/recall.png", "outputs/evaluate/per_predicate.png",
               "outputs/vqvae/code_usage.png")


def section_files(params_dir: Path) -> dict[str, str]:
    """Which ``params/*.yaml`` file holds each section."""
    from scenellm.config.load import NON_PARAM_FILES

    found = {}
    for path in sorted(params_dir.glob("*.yaml")):
        if path.name in NON_PARAM_FILES:
            continue
        for section in yaml.safe_load(path.read_text()) or {}:
            found.setdefault(section, path.name)
    return found


def code_deps(spec, repo_root: Path) -> list[str]:
    files = {*code_closure(spec.entry), *(PACKAGE_ROOT / e for e in spec.extra)}
    return sorted(p.resolve().relative_to(repo_root.resolve()).as_posix() for p in files)


def input_file_deps(spec, params_dir: Path) -> list[str]:
    """The files the stage's params name (``StageSpec.files``), as the params set them."""
    if not spec.files:
        return []
    from scenellm.config.load import load_params

    params = load_params(params_dir)
    values = [getattr(getattr(params, k.split(".")[0]), k.split(".")[1]) for k in spec.files]
    return [str(v) for v in values if v is not None]


def stage_entry(spec, params_dir: Path, repo_root: Path) -> dict[str, Any]:
    files = section_files(params_dir)
    by_file: dict[str, list[str]] = {}
    for section in spec.sections:
        by_file.setdefault(f"params/{files[section]}", []).append(section)
    deps = (["data"] if spec.reads_data else []) + \
        [f"outputs/{u}" for u in spec.upstream] + code_deps(spec, repo_root) + \
        input_file_deps(spec, params_dir)
    return {
        "cmd": f"scenellm stage {spec.name} --publish outputs/{spec.name} "
               f"--metrics metrics/{spec.name}.json"
               + (f" --history metrics/history/{spec.name}.json"
                  if spec.name in HISTORY_PLOTS else ""),
        "deps": deps,
        "params": [{f: sections} for f, sections in by_file.items()],
        "outs": [f"outputs/{spec.name}"],
        "metrics": [{f"metrics/{spec.name}.json": {"cache": False}}],
        **({"plots": [{f"metrics/history/{spec.name}.json": {"cache": False}}]}
           if spec.name in HISTORY_PLOTS else {}),
    }


def dvc_yaml(repo_root: Path) -> str:
    """The text of ``dvc.yaml`` for the project at ``repo_root``."""
    from scenellm.stages.registry import PIPELINE, stage_module

    stages = {name: stage_entry(stage_module(name).SPEC, repo_root / "params", repo_root)
              for name in PIPELINE}
    plots = [{f"metrics/history/{name}.json": spec} for name, spec in HISTORY_PLOTS.items()]
    plots += list(IMAGE_PLOTS)
    body = yaml.safe_dump({"stages": stages, "plots": plots}, sort_keys=False, width=100)
    return HEADER + body


def history_records(path: Path, stage: str) -> list[dict[str, Any]] | None:
    """The per-epoch history of a stage output (``history.json``; the detector's for
    ``features``) as ``[{"epoch": i, ...}]``, or None."""
    history = path / HISTORY_FILES.get(stage, "history.json")
    if not history.exists():
        return None
    return [{"epoch": i, **record} for i, record in enumerate(json.loads(history.read_text()))]


def publish_for_dvc(result, repo_root: Path) -> None:
    """Expose a stage result where ``dvc.yaml`` reads it: ``outputs/NAME`` (hard links),
    ``metrics/NAME.json`` and, for training stages, ``metrics/history/NAME.json``."""
    from scenellm.io import atomic_write_json
    from scenellm.stages.publish import publish_output, stage_metrics

    publish_output(result.path, repo_root / "outputs" / result.name)
    atomic_write_json(repo_root / "metrics" / f"{result.name}.json", stage_metrics(result))
    records = history_records(result.path, result.name)
    if records is not None:
        atomic_write_json(repo_root / "metrics" / "history" / f"{result.name}.json", records)
