"""Deterministic synthetic Action Genome data: a scripted world rendered with Pillow.

``generate(out_dir, seed, videos, frames, size)`` writes the exact AG layout; the world
rules that produce the labels are documented in :mod:`scenellm.data.synth.world`.
"""

from scenellm.data.synth.dataset import generate

__all__ = ["generate"]
