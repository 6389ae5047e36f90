"""LoRA for the scene LLM: default target modules per architecture and adapter loading.

LoRA (Hu et al. 2021, arXiv 2106.09685) freezes a pretrained weight W (d_out, d_in) and learns
a low-rank update, so an adapted Linear computes

    h = W x + (alpha / r) * B A x,    A: (r, d_in),  B: (d_out, r),  B = 0 at start,

and the adapted model equals the base model before the first step. Wrapping, saving and the
LoRA layers themselves are peft's; this file only picks which Linear layers to adapt and checks
that saved adapters fit the model they are loaded into.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from torch import nn

# Query and value projections per `config.model_type`, as in the LoRA paper (it adapts W_q, W_v).
LORA_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "electra": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "mixtral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"],
    "gemma": ["q_proj", "v_proj"],
    "gemma2": ["q_proj", "v_proj"],
    "opt": ["q_proj", "v_proj"],
    "gpt2": ["c_attn"],
    "gpt_neox": ["query_key_value"],
    "falcon": ["query_key_value"],
    "t5": ["q", "v"],
    "mt5": ["q", "v"],
}

# Fallback for unlisted architectures: Linear layers whose own name reads like a query, value
# or fused query-key-value projection.
_ATTENTION_PROJECTION = re.compile(
    r"^(q|v|query|value|q_proj|v_proj|q_lin|v_lin|query_proj|value_proj"
    r"|qkv|qkv_proj|Wqkv|c_attn|query_key_value)$"
)


def _is_linear(module: nn.Module) -> bool:
    """nn.Linear, or GPT-2's transposed Conv1D, which peft's LoRA also adapts."""
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, nn.Linear | Conv1D)


def linear_module_names(model: nn.Module) -> list[str]:
    """Sorted distinct last name components of the model's Linear layers ("query", "dense")."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if _is_linear(m)})


def default_target_modules(model: nn.Module, model_type: str | None) -> list[str]:
    """LoRA targets for `model`: LORA_TARGETS[model_type], else attention-like Linear names.

    Raises ValueError naming the available Linear layers when nothing fits.
    """
    available = linear_module_names(model)
    listed = LORA_TARGETS.get(model_type or "")
    if listed and set(listed) <= set(available):
        return list(listed)
    found = [name for name in available if _ATTENTION_PROJECTION.match(name)]
    if found:
        return found
    raise ValueError(
        f"No default LoRA target modules for model_type {model_type!r}: no Linear layer is "
        f"named like an attention projection; pass target_modules= with some of {available}."
    )


def check_target_modules(model: nn.Module, targets: list[str]) -> None:
    """Raise ValueError unless every target names a Linear layer (by suffix, as peft matches)."""
    names = [name for name, m in model.named_modules() if _is_linear(m)]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise ValueError(
            f"LoRA target modules {missing} match no Linear layer of this model; "
            f"choose from {linear_module_names(model)}."
        )


def load_lora_adapter(peft_model: nn.Module, directory: Path) -> None:
    """Load adapter weights saved by `peft_model.save_pretrained(directory)` into `peft_model`.

    The saved rank, alpha and target modules must equal the live adapter's, else ValueError.
    """
    from peft import load_peft_weights, set_peft_model_state_dict

    config_path = directory / "adapter_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"No LoRA adapter in {directory}: {config_path.name} is missing.")
    saved = json.loads(config_path.read_text())
    live = peft_model.peft_config["default"]
    for field in ("r", "lora_alpha", "target_modules"):
        want, got = getattr(live, field), saved.get(field)
        if field == "target_modules":
            want, got = sorted(want), sorted(got or [])
        if want != got:
            raise ValueError(
                f"LoRA adapter in {directory} has {field}={got!r} but this model uses {want!r}; "
                "build the model with the adapter's settings."
            )
    device = next(peft_model.parameters()).device
    weights = load_peft_weights(str(directory), device=str(device))
    result = set_peft_model_state_dict(peft_model, weights)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing:
        raise ValueError(
            f"LoRA adapter in {directory} does not fit this model: unexpected "
            f"{result.unexpected_keys[:5]}, missing {missing[:5]}."
        )
