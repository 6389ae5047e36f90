"""Benchmark: what each component of a slot costs per fine-tuning step, side by side.

The ablation table's s/epoch column is each cell's wall time, measured whenever the cell
ran: on a shared machine the load changes between cells, so it cannot give a ratio. Here
every variant runs in one process on the same batch, interleaved round by round (variant
order rotated each round), so drifting load hits all of them alike.

Model: the default configuration (params defaults: d_model 128, VQ-VAE 512 × 64, OT onto 32
scene words, the packaged MiniLM with LoRA r = 8), a VQ-VAE with random weights (the cost
does not depend on them). Batch: ``finetune.batch_videos`` (4) videos of 16 frames, each
frame a person and 6 objects with 256-d features and boxes, as the default data has. A step
is the training step of phase (c): forward in PREDCLS, the loss, backward, AdamW.

Reported: the median step time of each variant and its ratio to the default (SIA, MLP
heads, fixed gate).

Run: python bench/bench_components.py [--rounds 12] [--json results.json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from common import machine_info, print_table, write_json
from scenellm.config.schema import ModelParams
from scenellm.model.batch import VideoBatch
from scenellm.model.losses import sgg_loss
from scenellm.model.scenellm import SceneLLM, SceneLLMConfig
from scenellm.model.vqvae import VQVAE

FEATURE_DIM = 256
VARIANTS = {  # name → slot overrides (the components grid of params/ablate.yaml)
    "full": {},
    "spatial-rgt": {"spatial": "rgt"},
    "spatial-sge": {"spatial": "sge"},
    "head-moe": {"head": "moe"},
    "fusion-adaptive": {"fusion": "adaptive"},
}


def default_batch(videos: int = 4, frames: int = 16, objects: int = 6,
                  seed: int = 0) -> VideoBatch:
    """``videos`` × ``frames`` frames, a person and ``objects`` objects in each."""
    g = torch.Generator().manual_seed(seed)
    per_frame = objects + 1
    n_frames = videos * frames
    n = n_frames * per_frame
    frame_of_obj = torch.arange(n_frames).repeat_interleave(per_frame)
    video_of_frame = torch.arange(videos).repeat_interleave(frames)
    labels = torch.randint(2, 37, (n,), generator=g)
    labels[::per_frame] = 1
    xy = torch.rand(n, 2, generator=g) * 0.6
    boxes_norm = torch.cat([xy, xy + 0.05 + torch.rand(n, 2, generator=g) * 0.35], 1)
    person = torch.arange(n_frames) * per_frame
    pair_idx = torch.stack([person.repeat_interleave(objects),
                            (person[:, None] + torch.arange(1, per_frame)).reshape(-1)], 1)
    frame_of_pair = torch.arange(n_frames).repeat_interleave(objects)
    p = len(pair_idx)
    return VideoBatch(
        video_ids=[f"V{i}.mp4" for i in range(videos)],
        obj_feats=torch.randn(n, FEATURE_DIM, generator=g).relu(),
        boxes=boxes_norm * torch.tensor([160.0, 120.0, 160.0, 120.0]), boxes_norm=boxes_norm,
        labels=labels, is_person=labels == 1, frame_of_obj=frame_of_obj,
        video_of_obj=video_of_frame[frame_of_obj],
        obj_pos=torch.arange(n) % (frames * per_frame),
        video_of_frame=video_of_frame, frame_pos=torch.arange(n_frames) % frames,
        frame_mask=torch.ones(videos, frames, dtype=torch.bool),
        pair_idx=pair_idx, frame_of_pair=frame_of_pair,
        video_of_pair=video_of_frame[frame_of_pair],
        union_feats=torch.randn(p, FEATURE_DIM, generator=g).relu(),
        attention=torch.randint(0, 3, (p,), generator=g),
        spatial=(torch.rand(p, 6, generator=g) > 0.7).float(),
        contacting=(torch.rand(p, 17, generator=g) > 0.8).float())


def build(**slots) -> tuple[SceneLLM, torch.optim.Optimizer]:
    torch.manual_seed(0)
    defaults = ModelParams()
    vq = VQVAE(in_dim=FEATURE_DIM, code_dim=64, codebook_size=512, hidden_dim=256,
               kmeans_init=False)
    config = SceneLLMConfig(feature_dim=FEATURE_DIM, d_model=defaults.d_model, **slots)
    model = SceneLLM(config, vq, torch.zeros(FEATURE_DIM), torch.ones(FEATURE_DIM)).train()
    for q in model.vqvae.parameters():
        q.requires_grad_(False)
    trainable = [q for q in model.parameters() if q.requires_grad]
    return model, torch.optim.AdamW(trainable, lr=1e-4)


def step(model: SceneLLM, optimizer: torch.optim.Optimizer, batch: VideoBatch) -> float:
    start = time.perf_counter()
    loss, _ = sgg_loss(model(batch, mode="predcls"), batch.targets())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="Timed steps per variant.")
    parser.add_argument("--json", type=Path, default=None, help="Write the results here.")
    args = parser.parse_args()
    batch = default_batch()
    models = {name: build(**slots) for name, slots in VARIANTS.items()}
    for model, optimizer in models.values():  # warm-up: allocator, kernels, LoRA init
        step(model, optimizer, batch)
    times: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(step(*models[name], batch))
    base = statistics.median(times["full"])
    rows = [{"variant": name, "median_ms": round(1000 * statistics.median(t), 1),
             "min_ms": round(1000 * min(t), 1),
             "ratio_to_full": round(statistics.median(t) / base, 2)}
            for name, t in times.items()]
    print_table(rows, ["variant", "median_ms", "min_ms", "ratio_to_full"],
                f"one fine-tuning step, {batch.num_videos} videos × 16 frames × 7 nodes, "
                f"{torch.get_num_threads()} threads")
    write_json(args.json, {"machine": machine_info(), "rounds": args.rounds, "rows": rows})


if __name__ == "__main__":
    main()
