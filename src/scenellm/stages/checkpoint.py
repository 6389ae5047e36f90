"""Per-epoch training checkpoints so a killed stage resumes where it stopped.

Model weights go to safetensors; optimizer state and the small training state are loaded
back with ``torch.load(weights_only=True)``, which refuses arbitrary objects. A checkpoint
folder is replaced atomically (:func:`scenellm.io.staged_dir`): a kill leaves the previous
epoch's checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from scenellm.faults import killpoint
from scenellm.io import recover_dir, staged_dir


class EpochCheckpoint:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, model, optimizer, state: dict[str, Any]) -> None:
        import torch
        from safetensors.torch import save_file

        with staged_dir(self.folder) as tmp:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                      tmp / "model.safetensors")
            torch.save({"optimizer": optimizer.state_dict(), "state": state}, tmp / "train.pt")
            killpoint("checkpoint.written")

    def restore(self, model, optimizer) -> dict[str, Any] | None:
        import torch
        from safetensors.torch import load_file

        recover_dir(self.folder)
        if not (self.folder / "train.pt").exists():
            return None
        model.load_state_dict(load_file(self.folder / "model.safetensors"))
        blob = torch.load(self.folder / "train.pt", weights_only=True)
        optimizer.load_state_dict(blob["optimizer"])
        return blob["state"]

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
