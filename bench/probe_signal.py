"""Probe: what the inputs can tell beyond the boxes, on a finished pipeline's features.

The windowed trees (box geometry of the pair in frames t-3 … t+2) are the reference the model
must beat. This probe asks whether the model's other inputs hold signal that the trees
lack, by giving the same trees more inputs and scoring them on the test split:

- ``trees t-3..t+2``: the evaluate stage's windowed trees (the reference);
- ``+ features PCA k``: the same, plus the first k principal components (fitted on train)
  of the person's, the object's and the union box's detector features;
- ``window a..b``: a wider window of box geometry;
- ``+ relation CNN`` (``--cnn-epochs`` > 0): the detector's backbone (``small_cnn``)
  trained from scratch on the train frames to classify objects *and* to predict each pair's
  predicates from its union box, then its predicate logits added to the windowed trees'
  inputs (train logits are in-sample, so this row is optimistic). ``relation CNN alone``
  scores its own logits, one frame at a time.

Score: per-pair top-1 recall (each pair's best attention, spatial and contacting predicate
against its ground-truth labels, over all labels: the evaluator's PREDCLS R@20 with
constraint without its top-20 cut) and its mean over predicates (mR). Rows differ by their
inputs only; the trees are the evaluate stage's ``BoxTrees`` with the same seed.

Run after a pipeline run (``make run``): python bench/probe_signal.py [--pca 8 16]
[--windows -8,3] [--cnn-epochs 4] [--json out.json]. Minutes per row on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from common import REPO, print_table, write_json
from scenellm.evaluation.references import BoxTrees, pair_features
from scenellm.model.scene_graph_data import SceneGraphData

WINDOW = (-3, 2)  # the evaluate stage's windowed trees


def newest_output(home: Path, stage: str) -> Path:
    """The newest finished output of ``stage`` under the project home's artifacts."""
    done = sorted((home / "artifacts" / "stages" / stage).glob("*/_SUCCESS.json"),
                  key=lambda p: p.stat().st_mtime)
    if not done:
        raise SystemExit(f"no finished {stage} output under {home}: run `make run` first")
    return done[-1].parent


def split_rows(data: SceneGraphData, split: str, window: tuple[int, int]) -> dict:
    """Per pair of the split, video by video: window features, targets, the person's, the
    object's and the union box's detector features."""
    parts: dict[str, list] = {k: [] for k in ("x", "att", "spa", "con", "sub", "obj", "uni")}
    for vid in data.videos(split):
        b = data.batch([vid])
        parts["x"].append(pair_features(b, window))
        parts["att"].append(b.attention.numpy())
        parts["spa"].append(b.spatial.numpy())
        parts["con"].append(b.contacting.numpy())
        parts["sub"].append(b.obj_feats[b.pair_idx[:, 0]].numpy())
        parts["obj"].append(b.obj_feats[b.pair_idx[:, 1]].numpy())
        parts["uni"].append(b.union_feats.numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def top1_recall(pred: dict, att: np.ndarray, spa: np.ndarray, con: np.ndarray
                ) -> tuple[float, float]:
    """(R, mR) in %: each pair's top-1 predicate per kind against its labels."""
    hits, totals = [], []
    best = pred["attention"].argmax(1)
    for c in range(pred["attention"].shape[1]):
        labelled = att == c
        if labelled.any():
            hits.append(int((best[labelled] == c).sum()))
            totals.append(int(labelled.sum()))
    for kind, y in (("spatial", spa), ("contacting", con)):
        best = pred[kind].argmax(1)
        for j in range(y.shape[1]):
            labelled = y[:, j] > 0
            if labelled.any():
                hits.append(int((best[labelled] == j).sum()))
                totals.append(int(labelled.sum()))
    hits_a, totals_a = np.array(hits), np.array(totals)
    return 100 * hits_a.sum() / totals_a.sum(), 100 * float(np.mean(hits_a / totals_a))


def score(name: str, train: dict, test: dict, x_train: np.ndarray, x_test: np.ndarray,
          rows: list) -> None:
    start = time.perf_counter()
    trees = BoxTrees().fit(  # fit and predict read the given rows; the window is in them
        x_train, train["att"], train["spa"], train["con"])
    r, mr = top1_recall(trees.predict(x_test), test["att"], test["spa"], test["con"])
    rows.append({"row": name, "R": round(r, 2), "mR": round(mr, 2),
                 "seconds": round(time.perf_counter() - start, 1)})
    print(f"{name}: R {r:.2f} · mR {mr:.2f}", flush=True)


def relation_cnn(data: SceneGraphData, data_root: Path, epochs: int, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Predicate logits (P, 26) of train and test pairs from a ``small_cnn`` trained on
    object classes and union-box predicates of the train frames (pairs in
    :func:`split_rows` order)."""
    import torch
    import torch.nn.functional as F

    from scenellm.features.backbone_small_cnn import SmallCNN
    from scenellm.features.frames import load_frame, stack_frames, union_boxes

    def frames_of(split: str) -> list[dict]:
        out = []
        for vid in data.videos(split):
            b = data.batch([vid])
            keys = data.video_rows("frames", vid).sort_values("frame_index")["frame_key"]
            boxes, pairs = b.boxes.numpy(), b.pair_idx.numpy()
            unions = union_boxes(boxes, pairs)
            for f, pos in enumerate(b.frame_pos.tolist()):
                objs, prs = b.frame_of_obj.numpy() == f, b.frame_of_pair.numpy() == f
                out.append({"image": load_frame(data_root, keys.iloc[pos]),
                            "boxes": boxes[objs], "labels": b.labels.numpy()[objs],
                            "unions": unions[prs], "att": b.attention.numpy()[prs],
                            "spa": b.spatial.numpy()[prs], "con": b.contacting.numpy()[prs]})
        return out

    def forward(net, head, frames):
        def rois(key):
            rows = [np.hstack([np.full((len(d[key]), 1), i), d[key]])
                    for i, d in enumerate(frames)]
            return torch.as_tensor(np.vstack(rows), dtype=torch.float32)

        fmap = net.feature_map(stack_frames([d["image"] for d in frames]))
        return (net.classify(net.pool(fmap, rois("boxes"))),
                head(net.box_head(net.pool(fmap, rois("unions")))))

    def cat(frames, key, dtype):
        return torch.as_tensor(np.concatenate([d[key] for d in frames]), dtype=dtype)

    torch.manual_seed(seed)
    train, test = frames_of("train"), frames_of("test")
    net, head = SmallCNN(seed=seed), torch.nn.Linear(256, 26)
    optimizer = torch.optim.AdamW([*net.parameters(), *head.parameters()], lr=1e-3,
                                  weight_decay=1e-4)
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(epoch))
        for chunk in order.split(16):
            frames = [train[i] for i in chunk.tolist()]
            objects, rel = forward(net, head, frames)
            loss = (F.cross_entropy(objects, cat(frames, "labels", torch.long))
                    + F.cross_entropy(rel[:, :3], cat(frames, "att", torch.long),
                                      ignore_index=-100)
                    + F.binary_cross_entropy_with_logits(rel[:, 3:9],
                                                         cat(frames, "spa", torch.float32))
                    + F.binary_cross_entropy_with_logits(rel[:, 9:],
                                                         cat(frames, "con", torch.float32)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"relation CNN: epoch {epoch + 1}/{epochs}, last loss {loss.item():.3f}", flush=True)
    net.eval()
    with torch.no_grad():
        logits = [torch.cat([forward(net, head, frames[s:s + 32])[1]
                             for s in range(0, len(frames), 32)]).numpy()
                  for frames in (train, test)]
    return logits[0], logits[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pca", type=int, nargs="*", default=[8, 16],
                        help="principal components per feature kind (one row each)")
    parser.add_argument("--windows", nargs="*", default=["-8,3", "-12,4"],
                        help="wider windows of box geometry, 'lo,hi' (one row each)")
    parser.add_argument("--cnn-epochs", type=int, default=4,
                        help="epochs of the relation CNN (0: leave its rows out)")
    parser.add_argument("--home", type=Path,
                        default=Path(os.environ.get("SCENELLM_HOME", REPO / ".scenellm")),
                        help="the project home whose pipeline outputs are read")
    parser.add_argument("--data", type=Path, default=REPO / "data",
                        help="the dataset the features were computed from (its frames)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    from sklearn.decomposition import PCA

    data = SceneGraphData(newest_output(args.home, "features"),
                          newest_output(args.home, "prepare"))
    train, test = split_rows(data, "train", WINDOW), split_rows(data, "test", WINDOW)
    rows: list[dict] = []
    score("trees t-3..t+2", train, test, train["x"], test["x"], rows)
    for k in args.pca:
        x_train, x_test = [train["x"]], [test["x"]]
        for part in ("sub", "obj", "uni"):
            pca = PCA(k, random_state=0).fit(train[part])
            x_train.append(pca.transform(train[part]))
            x_test.append(pca.transform(test[part]))
        score(f"+ features PCA {k}", train, test, np.hstack(x_train), np.hstack(x_test), rows)
    for spec in args.windows:
        window = tuple(int(v) for v in spec.split(","))
        wide_train, wide_test = split_rows(data, "train", window), split_rows(data, "test", window)
        score(f"window {window[0]}..{window[1]}", train, test, wide_train["x"], wide_test["x"],
              rows)
    if args.cnn_epochs:
        cnn_train, cnn_test = relation_cnn(data, args.data, args.cnn_epochs)
        r, mr = top1_recall({"attention": cnn_test[:, :3], "spatial": cnn_test[:, 3:9],
                             "contacting": cnn_test[:, 9:]}, test["att"], test["spa"], test["con"])
        rows.append({"row": "relation CNN alone (one frame)", "R": round(r, 2),
                     "mR": round(mr, 2), "seconds": None})
        score("+ relation CNN logits", train, test, np.hstack([train["x"], cnn_train]),
              np.hstack([test["x"], cnn_test]), rows)
    print_table(rows, ["row", "R", "mR", "seconds"],
                "per-pair top-1 recall on the test split (%): the trees with more inputs")
    write_json(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
