"""Pre-flight: what a run needs, checked before any stage starts (one line per problem).

- the LLM (``llm.path``, or the packaged MiniLM) is a Hugging Face model folder whose
  config loads; with ``llm.mode`` lora, every ``lora.target_modules`` entry names a Linear
  layer of that model (the model is built on the meta device: no weights are read);
- an ``llm.quantization`` other than none has its backend: ``finetune.device`` is CUDA and
  bitsandbytes imports;
- a ``resnet`` detector has a ``detector.checkpoint`` file;
- with ``detect.source=file``, ``detect.file`` is a valid detections file
  (:mod:`scenellm.data.detections`);
- the requested devices (``detector.device``, ``detect.device``, ``finetune.device``) exist;
- ``finetune.nproc`` ranks on CUDA have a GPU each;
- the component options (``model.spatial_options`` …) are fields of the chosen
  components' configs.

Each failure is a :class:`~scenellm.errors.UserError` naming the ``params`` key; nothing
is retried or half-run for it.
"""

from __future__ import annotations

from pathlib import Path

from scenellm.config.schema import Params
from scenellm.errors import UserError


def _llm_folder(params: Params) -> Path:
    from scenellm.model.llm import default_llm_path

    if params.llm.path is None:
        try:
            return default_llm_path()
        except FileNotFoundError as exc:
            raise UserError(f"llm.path: {exc}") from None
    path = Path(params.llm.path).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"llm.path: {path} is not a Hugging Face model folder (no "
                        "config.json); set llm.path to a local model directory.")
    return path


def check_llm(params: Params) -> None:
    if params.llm.mode == "none":
        return
    path = _llm_folder(params)
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"llm.path: {path}: its config does not load "
                        f"({str(exc).splitlines()[0][:160]}).") from None
    if params.llm.mode != "lora" or not params.lora.target_modules:
        return
    from scenellm.model.lora import check_target_modules

    auto = AutoModelForTextEncoding if config.is_encoder_decoder else AutoModel
    with torch.device("meta"):
        model = auto.from_config(config)
    try:
        check_target_modules(model, list(params.lora.target_modules))
    except ValueError as exc:
        raise UserError(f"lora.target_modules: {exc}") from None


def check_quantization(params: Params) -> None:
    from scenellm.device import select_device
    from scenellm.model.llm import quantization_problem

    if params.llm.mode == "none":
        return
    problem = quantization_problem(params.llm.quantization,
                                   select_device(params.finetune.device))
    if problem:
        raise UserError(problem)


def check_devices(params: Params) -> None:
    from scenellm.device import select_device

    for key, preference in (("detector.device", params.detector.device),
                            ("detect.device", params.detect.device),
                            ("finetune.device", params.finetune.device)):
        try:
            select_device(preference)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{key}: {exc}.") from None
    device = select_device(params.finetune.device)
    if device.type == "cuda" and params.finetune.nproc > 1:
        import torch

        if params.finetune.nproc > torch.cuda.device_count():
            raise UserError(f"finetune.nproc: {params.finetune.nproc} ranks need as many GPUs; "
                            f"this machine has {torch.cuda.device_count()}.")


def check_detector(params: Params) -> None:
    p = params.detector
    if p.backbone == "resnet":
        if not p.checkpoint:
            raise UserError("detector.checkpoint: the resnet backbone needs a local checkpoint "
                            "file (no weights can be downloaded); set detector.checkpoint.")
        if not Path(p.checkpoint).expanduser().is_file():
            raise UserError(f"detector.checkpoint: {p.checkpoint} does not exist.")


def check_detections(params: Params) -> None:
    """The whole detections file is read and validated before any stage runs."""
    from scenellm.data.detections import Detections

    if params.detect.source != "file":
        return
    path = Path(params.detect.file).expanduser()
    if not path.is_file():
        raise UserError(f"detect.file: {path} does not exist; it should be a detections .npz "
                        "(docs/detections.md).")
    Detections.read(path)


def check_components(params: Params) -> None:
    from scenellm.model.components.fusion import FUSIONS
    from scenellm.model.components.heads import HEADS
    from scenellm.model.components.spatial import SPATIAL

    m = params.model
    for registry, name, options in ((SPATIAL, m.spatial, m.spatial_options),
                                    (HEADS, m.head, m.head_options),
                                    (FUSIONS, m.fusion, m.fusion_options)):
        try:
            registry.config(name, options)
        except (ValueError, TypeError) as exc:
            raise UserError(str(exc)) from None


def preflight(params: Params, target: str = "evaluate") -> None:
    """The checks that matter for ``target`` and its upstream stages; raises the first
    failure."""
    from scenellm.stages.registry import upstream_closure

    stages = set(upstream_closure(target))
    if "features" in stages:
        check_detector(params)
    if "detect" in stages:
        check_detections(params)
    if stages & {"features", "detect", "finetune"}:
        check_devices(params)
    if "finetune" in stages:
        check_components(params)
        check_quantization(params)
        check_llm(params)
