"""Per-epoch training checkpoints so a killed stage resumes where it stopped.

Model weights go to safetensors; optimizer state and the small training state are loaded
back with ``torch.load(weights_only=True)``, which refuses arbitrary objects.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


class EpochCheckpoint:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, model, optimizer, state: dict[str, Any]) -> None:
        import torch
        from safetensors.torch import save_file

        tmp = self.folder.with_name(self.folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  tmp / "model.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "state": state}, tmp / "train.pt")
        shutil.rmtree(self.folder, ignore_errors=True)
        os.rename(tmp, self.folder)

    def restore(self, model, optimizer) -> dict[str, Any] | None:
        import torch
        from safetensors.torch import load_file

        if not (self.folder / "train.pt").exists():
            return None
        model.load_state_dict(load_file(self.folder / "model.safetensors"))
        blob = torch.load(self.folder / "train.pt", weights_only=True)
        optimizer.load_state_dict(blob["optimizer"])
        return blob["state"]

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
