"""Save and load a fine-tuned SceneLLM as one self-contained directory.

Layout: ``config.json`` (SceneLLMConfig), ``vqvae/`` (the pretrained VQ-VAE it was built
on), ``weights.safetensors`` (every parameter and buffer outside the base LLM), ``llm/``
(LoRA adapters via peft ``save_pretrained``, or full LLM weights). ``config.json`` records
``llm_quantization`` and ``llm_gradient_checkpointing``, so a reload builds the same LLM;
directories written before them load as ``none`` and off.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from scenellm.errors import UserError
from scenellm.model.scenellm import SceneLLM, SceneLLMConfig

LLM_PREFIX = "llm.llm."


def save_finetuned(model: SceneLLM, directory: Path, vqvae_dir: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2,
                                                      sort_keys=True))
    shutil.copytree(vqvae_dir, directory / "vqvae", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.png", "history.json", "_SUCCESS.json",
                                                  "code_usage.json"))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
             if not k.startswith(LLM_PREFIX)}
    save_file(state, directory / "weights.safetensors")
    model.llm.save_adapters(directory / "llm")


def load_finetuned(directory: str | Path, device: str = "cpu",
                   llm_path: str | Path | None = None) -> SceneLLM:
    """Rebuild the model from a ``save_finetuned`` directory (eval mode); ``llm_path``
    replaces the recorded base LLM folder (a copy of it, e.g. inside a packaged model)."""
    from safetensors.torch import load_file

    from scenellm.model.vqvae import VQVAE

    directory = Path(directory)
    config = SceneLLMConfig(**json.loads((directory / "config.json").read_text()))
    if config.llm_mode != "none" and config.llm_quantization != "none" \
            and torch.device(device).type != "cuda":
        raise UserError(f"{directory}: its LLM was fine-tuned on a {config.llm_quantization} "
                        f"quantised base, which loads only on a CUDA device, not {device!r}.")
    if llm_path is not None:
        config.llm_path = str(llm_path)
    vqvae, mean, std = VQVAE.from_pretrained(directory / "vqvae")
    model = SceneLLM(config, vqvae, mean, std)
    missing, unexpected = model.load_state_dict(load_file(directory / "weights.safetensors"),
                                                strict=False)
    missing = [k for k in missing if not k.startswith(LLM_PREFIX)]
    if missing or unexpected:
        raise ValueError(f"{directory}: weights do not match the model "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]}).")
    model.llm.load_adapters(directory / "llm")
    return model.to(device).eval()
