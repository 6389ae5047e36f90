"""Probe: can a network trained on the frames at full resolution read what the boxes miss?

``bench/probe_signal.py`` found that the detector's features (a stride-8 map pooled to 7 × 7
per box, trained on object classes) and a relation CNN at the same resolution give the
windowed trees nothing. The cues the world draws for attention and contact are thin: a
one-pixel gaze line from the eye, the arm to the hand. This probe trains a pair network
that keeps them: a frame trunk at the frame's own resolution down to stride 4, and per
pair the trunk's map with two mask channels (the person's box, the object's box) through
two more strided convolutions and a dense layer over the whole map (position kept), to the
26 predicate logits, one frame at a time.

Rows (per-pair top-1 recall on the test split, as in ``probe_signal.py``):

- ``pair net alone (one frame)``: its own logits;
- ``trees t-3..t+2`` and ``+ pair net logits``: the windowed trees with the net's logits
  as extra columns; the train rows' logits are out of fold (the train videos split in
  ``--folds`` parts, each scored by a net trained on the others), so the row is honest.

Run after a pipeline run (``make run``): python bench/probe_pairnet.py [--epochs 12]
[--folds 2] [--json out.json]. Minutes per net on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from common import REPO, print_table, write_json
from probe_signal import WINDOW, newest_output, score, split_rows, top1_recall
from scenellm.model.scene_graph_data import SceneGraphData

STRIDE = 4


def pair_frames(data: SceneGraphData, data_root: Path, vid: str) -> list[dict]:
    """Per frame of the video (in :func:`split_rows` pair order): the image, each pair's
    person and object boxes and its labels."""
    from scenellm.features.frames import load_frame

    b = data.batch([vid])
    keys = data.video_rows("frames", vid).sort_values("frame_index")["frame_key"]
    boxes, pairs, frame_of_pair = b.boxes.numpy(), b.pair_idx.numpy(), b.frame_of_pair.numpy()
    att, spa, con = b.attention.numpy(), b.spatial.numpy(), b.contacting.numpy()
    out = []
    for f, pos in enumerate(b.frame_pos.tolist()):
        prs = frame_of_pair == f
        out.append({"image": load_frame(data_root, keys.iloc[pos]),
                    "sub": boxes[pairs[prs, 0]], "obj": boxes[pairs[prs, 1]],
                    "att": att[prs], "spa": spa[prs], "con": con[prs]})
    return out


def frames_of(by_video: dict[str, list[dict]], videos: list[str]) -> list[dict]:
    return [frame for v in videos for frame in by_video[v]]


def build_net(height: int, width: int):
    import torch.nn as nn

    def block(c_in, c_out, stride):
        return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True)]

    trunk = nn.Sequential(*block(3, 16, 1), *block(16, 32, 2), *block(32, 32, 2))
    h, w = -(-height // STRIDE), -(-width // STRIDE)
    head = nn.Sequential(*block(34, 48, 2), *block(48, 64, 2), nn.Flatten(),
                         nn.Linear(64 * -(-h // 4) * -(-w // 4), 128), nn.ReLU(inplace=True),
                         nn.Linear(128, 26))
    return nn.ModuleDict({"trunk": trunk, "head": head})


def box_masks(boxes: np.ndarray, h: int, w: int):
    """(P, h, w) soft masks of boxes in frame pixels on the stride-4 grid: each cell's
    covered fraction."""
    import torch

    b = torch.as_tensor(boxes, dtype=torch.float32) / STRIDE
    xs, ys = torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32)
    cover_x = (torch.minimum(xs + 1, b[:, 2:3]) - torch.maximum(xs, b[:, 0:1])).clamp(0, 1)
    cover_y = (torch.minimum(ys + 1, b[:, 3:4]) - torch.maximum(ys, b[:, 1:2])).clamp(0, 1)
    return cover_y[:, :, None] * cover_x[:, None, :]


def forward(net, frames: list[dict]):
    import torch

    from scenellm.features.frames import stack_frames

    images = stack_frames([d["image"] for d in frames]) - 0.5
    fmap = net["trunk"](images)  # (B, 32, h, w)
    h, w = fmap.shape[2:]
    owner = torch.cat([torch.full((len(d["sub"]),), i) for i, d in enumerate(frames)])
    masks = torch.stack([box_masks(np.concatenate([d[k] for d in frames]), h, w)
                         for k in ("sub", "obj")], 1)
    return net["head"](torch.cat([fmap[owner], masks], 1))


def train_net(frames: list[dict], epochs: int, seed: int, label: str):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    height, width = frames[0]["image"].shape[1:]
    net = build_net(height, width)
    steps = epochs * -(-len(frames) // 16)
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps)

    def cat(batch, key, dtype):
        return torch.as_tensor(np.concatenate([d[key] for d in batch]), dtype=dtype)

    net.train()
    for epoch in range(epochs):
        start, total = time.perf_counter(), 0.0
        order = torch.randperm(len(frames), generator=torch.Generator().manual_seed(seed + epoch))
        for chunk in order.split(16):
            batch = [frames[i] for i in chunk.tolist()]
            rel = forward(net, batch)
            loss = (F.cross_entropy(rel[:, :3], cat(batch, "att", torch.long), ignore_index=-100)
                    + F.binary_cross_entropy_with_logits(rel[:, 3:9], cat(batch, "spa", torch.float32))
                    + F.binary_cross_entropy_with_logits(rel[:, 9:], cat(batch, "con", torch.float32)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(chunk)
        print(f"{label}: epoch {epoch + 1}/{epochs} loss {total / len(frames):.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return net.eval()


def logits_of(net, frames: list[dict]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.cat([forward(net, frames[s:s + 32])
                          for s in range(0, len(frames), 32)]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="epochs of each pair net")
    parser.add_argument("--folds", type=int, default=2,
                        help="train-video folds for out-of-fold train logits (0: no stacking)")
    parser.add_argument("--home", type=Path,
                        default=Path(os.environ.get("SCENELLM_HOME", REPO / ".scenellm")))
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    data = SceneGraphData(newest_output(args.home, "features"),
                          newest_output(args.home, "prepare"))
    train_videos, test_videos = list(data.videos("train")), list(data.videos("test"))
    train, test = split_rows(data, "train", WINDOW), split_rows(data, "test", WINDOW)
    by_video = {v: pair_frames(data, args.data, v) for v in train_videos + test_videos}
    rows: list[dict] = []
    start = time.perf_counter()
    net = train_net(frames_of(by_video, train_videos), args.epochs, 0, "pair net")
    test_logits = logits_of(net, frames_of(by_video, test_videos))
    r, mr = top1_recall({"attention": test_logits[:, :3], "spatial": test_logits[:, 3:9],
                         "contacting": test_logits[:, 9:]}, test["att"], test["spa"], test["con"])
    rows.append({"row": "pair net alone (one frame)", "R": round(r, 2), "mR": round(mr, 2),
                 "seconds": round(time.perf_counter() - start, 1)})
    print(f"pair net alone: R {r:.2f} · mR {mr:.2f}", flush=True)
    if args.folds:
        score("trees t-3..t+2", train, test, train["x"], test["x"], rows)
        oof = {}
        for k in range(args.folds):
            held = train_videos[k::args.folds]
            fit = [v for v in train_videos if v not in held]
            fold_net = train_net(frames_of(by_video, fit), args.epochs, k + 1,
                                 f"fold {k + 1}/{args.folds}")
            for v in held:  # one video at a time: its rows stay its own
                oof[v] = logits_of(fold_net, by_video[v])
        train_logits = np.concatenate([oof[v] for v in train_videos])
        score("+ pair net logits (out of fold)", train, test,
              np.hstack([train["x"], train_logits]), np.hstack([test["x"], test_logits]), rows)
    print_table(rows, ["row", "R", "mR", "seconds"],
                "per-pair top-1 recall on the test split (%): a full-resolution pair net")
    write_json(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
