"""Probe: how close a plain MLP gets to the windowed trees on the trees' own inputs.

The windowed trees lead the model; this asks whether a neural network can read the same
box geometry as well, and what the detector features do to it. An MLP (ReLU layers,
dropout 0.1, AdamW, one-cycle learning rate, batches of 256 pairs) is trained on the train
split's pairs with the trees' inputs of :func:`scenellm.evaluation.references.pair_features`
(the object class embedded, every other column standardised by its train mean and spread,
a missing frame of the window as 0 plus a missing flag), with the losses of the model
(cross-entropy on attention, binary cross-entropy on spatial and contacting), and scored
like ``probe_signal.py``: per-pair top-1 recall R and its mean over predicates mR on the
test split.

Rows: ``--mlps`` (width × depth × epochs each) on the geometry alone and, with
``--features``, on the geometry and the person's, the object's and the union box's detector
features. Run after a pipeline run (``make run``): python bench/probe_mlp.py
[--mlps 256x2x40 512x3x80] [--features] [--json out.json]. About a minute per 40 epochs
on 2 cores (four with the features).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common import REPO, print_table, write_json
from probe_signal import WINDOW, newest_output, split_rows, top1_recall
from scenellm.model.scene_graph_data import SceneGraphData

NUM_CLASSES = 64  # above every STTran object id


def inputs(rows: dict, features: bool, stats=None):
    """(class ids, standardised columns with 0 where missing, missing flags, stats)."""
    x = rows["x"][:, 1:]
    if features:
        x = np.hstack([x, rows["sub"], rows["obj"], rows["uni"]])
    missing = np.isnan(x)
    if stats is None:
        stats = (np.nanmean(x, axis=0), np.nanstd(x, axis=0) + 1e-6)
    z = np.where(missing, 0.0, (x - stats[0]) / stats[1])
    as_float = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return (torch.as_tensor(rows["x"][:, 0], dtype=torch.long), as_float(z),
            as_float(missing), stats)


class MLP(nn.Module):
    def __init__(self, columns: int, width: int, depth: int) -> None:
        super().__init__()
        self.classes = nn.Embedding(NUM_CLASSES, 16)
        layers, width_in = [], 2 * columns + 16
        for _ in range(depth):
            layers += [nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(0.1)]
            width_in = width
        self.body = nn.Sequential(*layers, nn.Linear(width_in, 26))

    def forward(self, classes, z, missing):
        return self.body(torch.cat([z, missing, self.classes(classes)], dim=1))


def fit_and_score(train: dict, test: dict, features: bool, width: int, depth: int,
                  epochs: int, seed: int = 0) -> tuple[float, float]:
    torch.manual_seed(seed)
    c, z, m, stats = inputs(train, features)
    c_test, z_test, m_test, _ = inputs(test, features, stats)
    attention = torch.as_tensor(train["att"]).long()
    attention[attention < 0] = -100  # unlabelled pairs
    spatial = torch.as_tensor(train["spa"], dtype=torch.float32)
    contacting = torch.as_tensor(train["con"], dtype=torch.float32)
    net = MLP(z.shape[1], width, depth)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    batches = -(-len(z) // 256)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3,
                                                   total_steps=epochs * batches)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for rows in torch.randperm(len(z), generator=generator).split(256):
            out = net(c[rows], z[rows], m[rows])
            loss = (F.cross_entropy(out[:, :3], attention[rows], ignore_index=-100)
                    + F.binary_cross_entropy_with_logits(out[:, 3:9], spatial[rows])
                    + F.binary_cross_entropy_with_logits(out[:, 9:], contacting[rows]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    with torch.no_grad():
        out = net(c_test, z_test, m_test).numpy()
    return top1_recall({"attention": out[:, :3], "spatial": out[:, 3:9],
                        "contacting": out[:, 9:]}, test["att"], test["spa"], test["con"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlps", nargs="*", default=["256x2x40", "512x3x80"],
                        help="MLPs as WIDTHxDEPTHxEPOCHS (one row each)")
    parser.add_argument("--features", action="store_true",
                        help="also each MLP on the geometry and the detector features")
    parser.add_argument("--home", type=Path,
                        default=Path(os.environ.get("SCENELLM_HOME", REPO / ".scenellm")),
                        help="the project home whose pipeline outputs are read")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = SceneGraphData(newest_output(args.home, "features"),
                          newest_output(args.home, "prepare"))
    train, test = split_rows(data, "train", WINDOW), split_rows(data, "test", WINDOW)
    rows = []
    for spec in args.mlps:
        width, depth, epochs = (int(v) for v in spec.split("x"))
        for features in (False, True) if args.features else (False,):
            start = time.perf_counter()
            r, mr = fit_and_score(train, test, features, width, depth, epochs)
            name = f"MLP {width}×{depth}, {epochs} epochs" + (", + features" if features else "")
            rows.append({"row": name, "R": round(r, 2), "mR": round(mr, 2),
                         "seconds": round(time.perf_counter() - start, 1)})
            print(f"{name}: R {r:.2f} · mR {mr:.2f}", flush=True)
    print_table(rows, ["row", "R", "mR", "seconds"],
                "per-pair top-1 recall on the test split (%): an MLP on the trees' inputs")
    write_json(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
