"""``generate``: a deterministic synthetic Action Genome dataset.

Randomness is keyed, never shared: the dataset plan (video ids, split, short videos)
draws from ``default_rng([seed, 0])``, and video ``i`` (in sorted id order) from
``default_rng([seed, 1, i])`` (room and plan), ``[seed, 2, i]`` (pixels) and
``[seed, 3, i]`` (frame numbers). A video's content therefore depends only on the seed,
its index and the frame count, not on what was generated before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenellm.data.ceilings import write_states
from scenellm.data.synth.occlusion import in_frame
from scenellm.data.synth.plan import plan_video
from scenellm.data.synth.render import render, video_look
from scenellm.data.synth.scene import layout_scene
from scenellm.data.synth.world import simulate
from scenellm.data.synth.writer import ActionGenomeWriter, atomic_directory, pixel_box

ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
TEST_SHARE, SHORT_SHARE = 0.4, 0.04


@dataclass(frozen=True)
class VideoSpec:
    video_id: str  # 5 uppercase alphanumerics, like AG's "001YG"
    split: str
    frames: int


def dataset_plan(seed: int, videos: int, frames: int) -> list[VideoSpec]:
    """Ids (sorted), a ~60/40 train/test split per video, and a few 1–2 frame videos."""
    rng = np.random.default_rng([seed, 0])
    ids: set[str] = set()
    while len(ids) < videos:
        ids.add("".join(ID_ALPHABET[k] for k in rng.integers(0, len(ID_ALPHABET), 5)))
    order = rng.permutation(videos)
    n_test = min(max(round(TEST_SHARE * videos), 1), videos - 1) if videos > 1 else 0
    test = set(order[:n_test].tolist())
    short = set(rng.permutation(videos)[: round(SHORT_SHARE * videos)].tolist())
    lengths = rng.integers(1, 3, videos)
    return [
        VideoSpec(
            vid,
            "test" if i in test else "train",
            min(frames, int(lengths[i])) if i in short else frames,
        )
        for i, vid in enumerate(sorted(ids))
    ]


def frame_numbers(rng: np.random.Generator, n: int) -> list[int]:
    """Increasing, non-consecutive raw frame numbers: every ``stride`` frames, jittered."""
    stride = int(rng.integers(4, 30))
    start = int(rng.integers(0, 60))
    jitter = rng.integers(0, stride // 2 + 1, n)
    return [start + k * stride + int(jitter[k]) for k in range(n)]


def generate(
    out_dir: Path,
    seed: int,
    videos: int = 100,
    frames: int = 16,
    size: tuple[int, int] = (160, 120),
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write a synthetic dataset in the Action Genome layout to ``out_dir``; return counts.

    Same arguments → byte-identical files. ``out_dir`` must not exist or be empty; the
    folder appears only once complete (built in a sibling temp folder, then renamed).
    """
    if seed < 0 or videos < 1 or frames < 1 or min(size) < 32:
        raise ValueError(
            "generate needs seed >= 0, videos >= 1, frames >= 1 and a frame "
            f"size of at least 32x32 (got seed={seed}, videos={videos}, "
            f"frames={frames}, size={size})."
        )
    W, H = size
    started = time.perf_counter()
    specs = dataset_plan(seed, videos, frames)
    counts = {
        s: {"videos": 0, "frames": 0, "objects": 0, "visible_objects": 0} for s in ("train", "test")
    }
    no_person = no_visible = 0
    world: dict[str, list[tuple[tuple, tuple]]] = {}
    with atomic_directory(Path(out_dir)) as tmp:
        writer = ActionGenomeWriter(tmp, size)
        for i, spec in enumerate(specs):
            world_rng = np.random.default_rng([seed, 1, i])
            pixel_rng = np.random.default_rng([seed, 2, i])
            numbers = frame_numbers(np.random.default_rng([seed, 3, i]), spec.frames)
            things = layout_scene(world_rng, W, H)
            kinds = [t.kind for t in things]
            states = simulate(things, plan_video(things, size, spec.frames, world_rng), size)
            look = video_look(pixel_rng, size)
            for number, state in zip(numbers, states, strict=True):
                person = None
                if state.person_seen:
                    score = round(0.7 + 0.29 * in_frame(state.person_box, W, H), 4)
                    person = (pixel_box(state.person_box, W, H), score)
                objects = [
                    (
                        k.name,
                        pixel_box(o.box, W, H) if o.visible else None,
                        {"attention": o.attention, "spatial": o.spatial, "contacting": o.contacting}
                        if o.visible
                        else None,
                    )
                    for k, o in zip(kinds, state.objects, strict=True)
                ]
                world[f"{spec.video_id}.mp4/{number:06d}.png"] = [
                    (o.state, o.memory) for o in state.objects if o.visible]
                writer.add_frame(
                    spec.video_id,
                    number,
                    render(state, kinds, look, pixel_rng),
                    person,
                    objects,
                    spec.split,
                )
                visible = sum(o.visible for o in state.objects)
                no_person += person is None
                no_visible += visible == 0
                c = counts[spec.split]
                c["frames"] += 1
                c["objects"] += len(kinds)
                c["visible_objects"] += visible
            counts[spec.split]["videos"] += 1
            if progress is not None:
                progress(i + 1, len(specs))
        writer.close()
        write_states(tmp, world)
    return {
        "videos": len(specs),
        "frames": sum(c["frames"] for c in counts.values()),
        "objects": sum(c["objects"] for c in counts.values()),
        "visible_objects": sum(c["visible_objects"] for c in counts.values()),
        "frames_without_person": no_person,
        "frames_without_visible_objects": no_visible,
        "short_videos": sum(s.frames <= 2 for s in specs),
        "seed": seed,
        "size": f"{W}x{H}",
        "seconds": round(time.perf_counter() - started, 2),
        "splits": counts,
    }
