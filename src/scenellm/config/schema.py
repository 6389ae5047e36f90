"""Typed, validated parameters: one pydantic model per ``params/*.yaml`` section.

Every field carries its help text; stages declare which sections they read and receive
only those (see :mod:`scenellm.stages.base`). Numbers are finite (no ``.inf``/``.nan``),
never booleans (``true`` is not 1), integers fit in 32 bits, and the rules that tie two
sections together are :func:`cross_field_problems`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

Stage = Literal["prepare", "features", "detect", "vqvae", "finetune", "evaluate"]  # pipeline order
STAGE_NAMES: tuple[str, ...] = get_args(Stage)
INT_MAX = 2**31 - 1


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("bool_as_number", "expected a number, not true/false")
    return value


def _matches(pattern: str, expected: str) -> AfterValidator:
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise PydanticCustomError("format", expected)
        return value

    return AfterValidator(check)


_Number = BeforeValidator(_not_bool)
Int = Annotated[int, _Number, Field(ge=-INT_MAX, le=INT_MAX)]
PositiveInt = Annotated[int, _Number, Field(gt=0, le=INT_MAX)]
Seed = Annotated[int, _Number, Field(ge=0, le=2**32 - 1)]
Float = Annotated[float, _Number]
PositiveFloat = Annotated[float, _Number, Field(gt=0)]
Device = Annotated[str, _matches(r"auto|cpu|cuda(:[0-9]+)?", "expected auto, cpu, cuda or cuda:N")]
Cron = Annotated[str, _matches(r"\S+( +\S+){4}", "expected five cron fields, e.g. '0 3 * * 1'")]
NonEmpty = Annotated[str, Field(min_length=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataParams(Section):
    root: NonEmpty = Field("data", description="Action Genome root (annotations/ and frames/); "
                                                "only the default 'data' is ever generated.")
    synth_seed: Seed = Field(0, description="Seed of the embedded synthetic dataset.")
    synth_videos: PositiveInt = Field(150, description="Videos in the synthetic dataset.")
    synth_frames: PositiveInt = Field(16, description="Frames per synthetic video.")
    synth_width: PositiveInt = Field(160, ge=32, description="Synthetic frame width in pixels.")
    synth_height: PositiveInt = Field(120, ge=32, description="Synthetic frame height in pixels.")


class PrepareParams(Section):
    min_frames: PositiveInt = Field(
        3, description="Keep a video only with at least this many kept frames (STTran: > 2)."
    )
    validate_data: bool = Field(True, description="Run the Great Expectations suite.")


class DetectorParams(Section):
    backbone: Literal["small_cnn", "resnet"] = Field("small_cnn", description="Backbone name.")
    checkpoint: str | None = Field(None, description="Local checkpoint for 'resnet'.")
    feature_dim: PositiveInt = Field(256, description="Object / union feature size.")
    roi_size: PositiveInt = Field(7, description="RoIAlign output size.")
    epochs: Int = Field(2, ge=0, description="Epochs of crop classification training.")
    lr: PositiveFloat = Field(1e-3, description="Learning rate of the detector head training.")
    batch_size: PositiveInt = Field(16, description="Frames per batch.")
    device: Device = Field("auto", description="auto | cpu | cuda | cuda:N.")
    seed: Seed = Field(0, description="Seed of detector training.")


class DetectParams(Section):
    source: Literal["train", "file"] = Field(
        "train", description="SGDET boxes: 'train' a centre-point head on the detector "
                             "backbone, or read them from `file`.")
    file: NonEmpty | None = Field(
        None, description="Detections .npz in the documented format (docs/detections.md), "
                          "for source=file; its content is part of the stage fingerprint.")
    hidden: PositiveInt = Field(32, description="Channels of the head's dilated convolutions.")
    epochs: PositiveInt = Field(12, description="Epochs of detection-head training.")
    lr: PositiveFloat = Field(3e-3, description="Adam learning rate of the detection head.")
    batch_size: PositiveInt = Field(32, description="Frames per batch.")
    budget: PositiveInt = Field(
        12, description="Detections kept per frame besides the person (SGDET's proposals).")
    min_score: Float = Field(0.05, ge=0, lt=1, description="Score below which a detection "
                                                           "is dropped (the person is kept).")
    device: Device = Field("auto", description="auto | cpu | cuda | cuda:N.")
    seed: Seed = Field(0, description="Seed of head training.")

    @model_validator(mode="after")
    def _file_for_source(self) -> DetectParams:
        if self.source == "file" and self.file is None:
            raise ValueError("detect.source=file needs detect.file (a detections .npz)")
        return self


class VQVAEParams(Section):
    codebook_size: PositiveInt = Field(512, description="K, number of codes (paper 512).")
    code_dim: PositiveInt = Field(64, description="D, code vector size.")
    hidden_dim: PositiveInt = Field(256, description="Encoder / decoder hidden size.")
    beta: PositiveFloat = Field(0.25, description="Commitment weight β.")
    decay: Float = Field(0.99, gt=0, lt=1, description="EMA decay of the codebook.")
    dead_threshold: Float = Field(
        0.1, ge=0, description="Restart a code whose EMA use falls below this share of N/K.")
    kmeans_init: bool = Field(True, description="Initialise codes by k-means on a first batch.")
    epochs: PositiveInt = Field(30, description="Maximum epochs.")
    patience: PositiveInt = Field(5, description="Early stopping patience (epochs).")
    lr: PositiveFloat = Field(3e-4, description="AdamW learning rate.")
    batch_size: PositiveInt = Field(256, description="Object features per batch.")
    holdout: Float = Field(0.1, gt=0, lt=1, description="Share of features held out.")
    nproc: PositiveInt = Field(1, description="Data-parallel processes (torchrun + DDP, gloo); "
                                              "each takes batch_size/nproc rows of a batch.")
    seed: Seed = Field(0, description="Training seed.")


class ModelParams(Section):
    tokens: Literal["vq", "continuous"] = Field("vq", description="Object tokens: VQ or raw.")
    temporal: Literal["ot", "mean", "none"] = Field("ot", description="Temporal aggregation.")
    context: Literal["video", "frame"] = Field(
        "video", description="frame: no information crosses frames (per-frame variant).")
    language: Literal["frames", "objects", "pairs"] = Field(
        "frames", description="LLM sentence: frame tokens, or each frame then its objects "
                               "or its person-object pairs.")
    d_model: PositiveInt = Field(128, description="Width of SIA and the predictor.")
    sia_groups: PositiveInt = Field(3, description="Groups of the SIA clustering tree.")
    decoder_layers: PositiveInt = Field(1, description="Predictor decoder layers.")
    gate_alpha: Float = Field(0.5, ge=0, le=1, description="Gated fusion weight α.")
    spatial: Literal["sia", "rgt", "sge"] = Field(
        "sia", description="Spatial aggregator: sia (SceneLLM), rgt (SPADE), sge (LLaVA-SG).")
    head: Literal["mlp", "moe"] = Field(
        "mlp", description="Predicate heads: mlp (SceneLLM), moe (MoE-VRD experts).")
    fusion: Literal["gate", "adaptive"] = Field(
        "gate", description="Fusion: gate (SceneLLM's α), adaptive (VEGA-3D gate over motion).")
    spatial_options: dict[str, int | float | bool] = Field(
        {}, description="Config fields of the spatial component (its dataclass).")
    head_options: dict[str, int | float | bool] = Field(
        {}, description="Config fields of the head component (its dataclass).")
    fusion_options: dict[str, int | float | bool] = Field(
        {}, description="Config fields of the fusion component (its dataclass).")
    union: Literal["raw", "standardized"] = Field(
        "standardized", description="Union-box features in the pair query: raw detector "
                                    "features, or standardized by the object features' mean "
                                    "and std as object tokens are.")
    logit_adjust: Float = Field(
        0.0, ge=0, description="τ of post-hoc logit adjustment: at inference each predicate's "
                               "logit loses τ · log(its share of the training pairs), so a "
                               "rare predicate wins over a frequent one it co-occurs with "
                               "(0 = off).")
    pair_window: tuple[Int, Int] | None = Field(
        (-3, 2), description="[lo, hi] frame offsets (lo ≤ 0 ≤ hi): each pair query also "
                             "reads its object's geometry with the person in frames "
                             "t+lo … t+hi (not t), followed by class as the windowed trees "
                             "do; null = its frame only.")

    @field_validator("pair_window")
    @classmethod
    def _window_around_zero(cls, window: tuple[int, int] | None) -> tuple[int, int] | None:
        if window is not None and not (window[0] <= 0 <= window[1] and window[0] < window[1]):
            raise PydanticCustomError(
                "pair_window", "expected [lo, hi] with lo ≤ 0 ≤ hi and lo < hi, e.g. [-3, 2]")
        return window


class OTParams(Section):
    source: Literal["frames", "codes"] = Field(
        "frames", description="Transport the frame-token sequence or the VQ-code histogram.")
    num_scene_tokens: PositiveInt = Field(32, description="M scene words C⁺ (M < K).")
    epsilon: PositiveFloat = Field(0.05, description="Entropic regularisation ε.")
    max_iter: PositiveInt = Field(100, description="Sinkhorn iterations.")
    tol: Float = Field(1e-6, ge=0, description="Sinkhorn marginal tolerance.")


class LLMParams(Section):
    path: NonEmpty | None = Field(None, description="Local HF model dir; None = packaged MiniLM.")
    mode: Literal["lora", "full", "frozen", "none"] = Field("lora", description="Adaptation.")
    prompt: str | None = Field("Scene:", description="Short text prompt before scene tokens.")
    quantization: Literal["none", "8bit", "4bit"] = Field(
        "none", description="Load the frozen base LLM in 8 bit or 4 bit (nf4) with bitsandbytes; "
                            "CUDA only, llm.mode lora or frozen (docs/llm-memory.md).")
    gradient_checkpointing: bool = Field(
        False, description="Recompute LLM activations in backward: less memory, more compute.")


class LoRAParams(Section):
    rank: PositiveInt = Field(8, description="LoRA rank r.")
    alpha: PositiveFloat = Field(16.0, description="LoRA scaling α.")
    dropout: Float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[NonEmpty] | None = Field(
        None, min_length=1, description="None = per-architecture default.")


class FinetuneParams(Section):
    phase_b_epochs: Int = Field(6, ge=0, description="Epochs with VQ-VAE and LLM frozen.")
    phase_c_epochs: Int = Field(6, ge=0, description="Epochs of LoRA fine-tuning.")
    lr: PositiveFloat = Field(4e-3, description="AdamW lr of heads (paper 1e-5 at LLaMA scale).")
    lora_lr: PositiveFloat = Field(2e-3, description="AdamW lr of LoRA adapters.")
    full_lr: PositiveFloat = Field(2e-5, description="AdamW lr of every LLM weight (llm.mode=full).")
    warmup_steps: Int = Field(20, ge=0, description="Linear lr warm-up steps, then cosine decay.")
    max_steps: Int = Field(0, ge=0, description="Step budget (0 = all epochs); ends training.")
    patience: Int = Field(0, ge=0, description="Stop after this many epochs without a better "
                                               "selection score (0 = never).")
    balance: Float = Field(
        0.5, ge=0, le=1, description="β of class-balanced BCE: each spatial and contacting "
                                     "predicate's positives weigh ((1 − p) / p) ** β, p its "
                                     "share of the training pairs (0 = plain BCE).")
    select: Literal["R@20", "R@20+mR@20", "last"] = Field(
        "R@20+mR@20", description="Epoch whose model is kept: best validation PREDCLS R@20, "
                                  "best mean of R@20 and mR@20, or the last.")
    weight_decay: Float = Field(0.01, ge=0, description="AdamW weight decay.")
    grad_clip: PositiveFloat = Field(1.0, description="Gradient norm clip.")
    batch_videos: PositiveInt = Field(4, description="Videos per batch.")
    val_fraction: Float = Field(0.2, gt=0, lt=1, description="Train videos held out for validation.")
    device: Device = Field("auto", description="auto | cpu | cuda | cuda:N.")
    mixed_precision: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU).")
    nproc: PositiveInt = Field(1, description="Data-parallel processes (torchrun + DDP; one "
                                              "GPU each on CUDA, gloo on CPU); each takes "
                                              "batch_videos/nproc videos of every batch.")
    seed: Seed = Field(0, description="Training seed.")


class EvaluateParams(Section):
    modes: list[Literal["predcls", "sgcls", "sgdet"]] = Field(
        ["predcls", "sgcls"], min_length=1, max_length=3,
        description="Modes (each once); sgdet scores the detect stage's boxes.")
    iou_threshold: Float = Field(0.5, gt=0, le=1, description="Box IoU threshold.")
    semi_threshold: Float = Field(0.9, gt=0, lt=1, description="Score threshold of 'semi'.")


class OrchestrationParams(Section):
    retries: Int = Field(1, ge=0, description="Task retries for transient failures.")
    retry_delay_seconds: Float = Field(5.0, ge=0, description="First retry delay (backs off).")
    timeout_seconds: dict[Stage, PositiveFloat] = Field(
        default_factory=lambda: {"prepare": 600, "features": 1800, "detect": 1800, "vqvae": 1800,
                                 "finetune": 7200, "evaluate": 1800},
        description="Per-stage timeout.",
    )
    gpu_pool: NonEmpty | None = Field(None, description="Work pool running GPU stages; None = local.")
    gpu_stages: list[Stage] = Field(["features", "vqvae", "finetune"], description="Routed stages.")
    feature_workers: PositiveInt = Field(
        1, le=256, description="Worker threads that write feature shards, each shard group a "
        "Prefect task run; 1 = one plain loop. Never changes the store's bytes, so it is not "
        "in the features fingerprint.")
    experiment: NonEmpty = Field("scenellm", description="MLflow experiment name.")
    retrain_cron: Cron = Field("0 3 * * 1", description="Schedule of `scenellm serve` (cron).")


class Params(Section):
    data: DataParams = DataParams()
    prepare: PrepareParams = PrepareParams()
    detector: DetectorParams = DetectorParams()
    detect: DetectParams = DetectParams()
    vqvae: VQVAEParams = VQVAEParams()
    model: ModelParams = ModelParams()
    ot: OTParams = OTParams()
    llm: LLMParams = LLMParams()
    lora: LoRAParams = LoRAParams()
    finetune: FinetuneParams = FinetuneParams()
    evaluate: EvaluateParams = EvaluateParams()
    orchestration: OrchestrationParams = OrchestrationParams()

    @model_validator(mode="after")
    def _cross_field(self) -> Params:
        for keys, rule in cross_field_problems(self):
            raise PydanticCustomError("cross_field", "{rule}", {"rule": rule, "keys": keys})
        return self


def cross_field_problems(p: Params) -> list[tuple[tuple[str, ...], str]]:
    """Rules that tie fields of two sections: ``(keys involved, the rule broken)``."""
    problems = []
    if (p.model.temporal == "ot" and p.ot.source == "codes"
            and p.ot.num_scene_tokens >= p.vqvae.codebook_size):
        problems.append((("ot.num_scene_tokens", "vqvae.codebook_size"),
                         f"ot.num_scene_tokens ({p.ot.num_scene_tokens}) must be smaller than "
                         f"vqvae.codebook_size ({p.vqvae.codebook_size}): OT maps the K codes "
                         "onto M < K scene words"))
    if p.llm.quantization != "none" and p.llm.mode == "full":
        problems.append((("llm.quantization", "llm.mode"),
                         f"llm.quantization={p.llm.quantization} needs llm.mode lora or frozen, "
                         "not full: quantised weights cannot be fine-tuned in full"))
    if len(set(p.evaluate.modes)) != len(p.evaluate.modes):
        problems.append((("evaluate.modes",), f"evaluate.modes {p.evaluate.modes} lists a "
                                              "mode twice"))
    return problems
