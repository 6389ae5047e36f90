"""Stop a training stage whose numbers stop meaning anything, with one line naming the
params to change; the stage then records no success and keeps nothing.

An epoch record is refused when any value is NaN or infinite, when its ``watch`` value
exceeds ``EXPLODED`` times the first epoch's (the optimiser left the basin), or exceeds
``limit`` (the VQ-VAE reconstructs standardised features: predicting zeros scores 1, so an
error of 1000 is no reconstruction at all).
"""

from __future__ import annotations

import math

from scenellm.errors import TrainingDiverged

EXPLODED = 1000.0


def check_epoch(stage: str, epoch: int, record: dict[str, float], history: list[dict],
                hint: str, watch: str | None = None, limit: float = math.inf) -> None:
    """Raise :class:`TrainingDiverged` when ``record`` (epoch ``epoch``) has diverged."""
    bad = sorted(k for k, v in record.items()
                 if isinstance(v, float | int) and not math.isfinite(v))
    if bad:
        raise TrainingDiverged(f"{stage}: {bad[0]} became {record[bad[0]]} at epoch {epoch}; "
                               f"{hint}")
    if watch and watch in record and float(record[watch]) > limit:
        raise TrainingDiverged(f"{stage}: {watch} is {float(record[watch]):.3g} at epoch "
                               f"{epoch} (above {limit:g}); {hint}")
    if watch and history and watch in history[0] and watch in record:
        first, now = float(history[0][watch]), float(record[watch])
        if first > 0 and now > EXPLODED * first:
            raise TrainingDiverged(f"{stage}: {watch} exploded to {now:.3g} at epoch {epoch} "
                                   f"({now / first:.3g} times epoch 0's {first:.3g}); {hint}")
