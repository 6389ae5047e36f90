"""``detect``: SGDET's boxes. A centre-point head (:mod:`scenellm.features.detection_head`)
trained on the features stage's backbone, or a detections file you bring
(``detect.source=file``, format in :mod:`scenellm.data.detections`); then, for every test
video, a feature shard over the detected nodes (the best person, then up to
``detect.budget`` objects), pooled by the same backbone as the ground-truth shards, which
the evaluate stage scores in SGDET.

Also writes the detector's metrics beside a reference that never looks at the image (each
class's mean training box, scored by the class's share of training boxes): AP@0.5 per class,
mAP, and the recall of ground-truth boxes by the kept nodes; ``detections.npz`` (the test
frames' detections in the documented format, what ``source=file`` reads back).

Resumable: the head is checkpointed every epoch; test shards are journaled like the
features stage's. Without ``sgdet`` in ``evaluate.modes`` the stage does nothing (it writes
``skipped.txt``), so a run that does not ask for SGDET pays nothing for it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from scenellm.faults import killpoint
from scenellm.stages.base import StageContext, StageSpec
from scenellm.stages.checkpoint import EpochCheckpoint

SPEC = StageSpec(
    name="detect",
    sections=("detect", "evaluate"),  # evaluate.modes: without sgdet there is nothing to do
    upstream=("prepare", "features"),
    resumable=True,
    files=("detect.file",),
)
DETECTIONS = "detections.npz"


def load_backbone(features: Path, device):
    """The features stage's backbone, with the weights it trained (if it trained any)."""
    from safetensors.torch import load_file

    from scenellm.features.backbone import build_backbone
    from scenellm.features.store import FeatureStore

    config = FeatureStore(features).load_manifest()["detector_config"]
    model = build_backbone({**config, "checkpoint": None} if (features / "detector.safetensors")
                           .exists() else config)
    if (features / "detector.safetensors").exists():
        model.load_state_dict(load_file(features / "detector.safetensors"))
    return model.to(device).eval()


def ground_truth(frames, objects) -> dict[str, tuple]:
    """frame key → (boxes (k, 4), STTran ids (k,)): the person, then the objects."""
    from scenellm.features.frames import frame_nodes

    by_frame = {k: g for k, g in objects.groupby("frame_key")}
    out = {}
    for _, frame in frames.iterrows():
        boxes, labels, _ = frame_nodes(frame, by_frame.get(frame["frame_key"], objects.iloc[:0]))
        out[frame["frame_key"]] = (boxes, labels)
    return out


class MapCache:
    """Feature maps written once to a file and read back one at a time (``pread``, no
    mapping), so they never count in the process's memory: a frame's map is 154 KB at
    160x120 with ``small_cnn``, 1.3 GB for 8,800 train frames. The file is deleted on
    :meth:`close` (also on the way out of a ``with`` block)."""

    def __init__(self, path: Path) -> None:
        import os

        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._end = 0
        self._index: list[tuple[int, tuple[int, ...]]] = []  # (offset, shape) per map

    def append(self, value) -> None:
        import os

        data = value.detach().cpu().float().contiguous().numpy().tobytes()
        written = 0
        while written < len(data):
            written += os.pwrite(self._fd, data[written:], self._end + written)
        self._index.append((self._end, tuple(value.shape)))
        self._end += len(data)

    def __getitem__(self, i: int):
        import os

        import numpy as np
        import torch

        offset, shape = self._index[i]
        size = 4 * int(np.prod(shape))
        data = bytearray()
        while len(data) < size:
            chunk = os.pread(self._fd, size - len(data), offset + len(data))
            if not chunk:
                raise OSError(f"{self.path}: map {i} is cut short")
            data += chunk
        return torch.frombuffer(data, dtype=torch.float32).reshape(shape)

    def __len__(self) -> int:
        return len(self._index)

    def close(self) -> None:
        import os

        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> MapCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def feature_maps(backbone, data_root: Path, keys: list[str], device, batch_size: int,
                 label: str, into=None):
    """Each frame's (C, h, w) float32 feature map (the backbone is frozen: computed once),
    one frame at a time, so frames of different sizes keep their own map size; appended to
    ``into`` (a :class:`MapCache`, default a list) and returned."""
    import torch

    from scenellm.features.frames import load_frame, stack_frames
    from scenellm.progress import progress

    maps = [] if into is None else into
    with progress(label, len(keys), "frames") as bar, torch.no_grad():
        for start in range(0, len(keys), batch_size):
            chunk = [load_frame(data_root, k) for k in keys[start:start + batch_size]]
            batch = backbone.feature_map(stack_frames(chunk).to(device)).float().cpu()
            stride = backbone.stride
            for i, img in enumerate(chunk):
                maps.append(batch[i, :, :-(-img.shape[1] // stride), :-(-img.shape[2] // stride)])
            bar.update(advance=len(chunk))
    return maps


def pad_maps(maps: list):
    """(B, C, H, W): maps of a batch zero-padded bottom/right to the largest (as frames
    are by ``stack_frames``, so boxes keep their cells)."""
    import torch

    h = max(m.shape[1] for m in maps)
    w = max(m.shape[2] for m in maps)
    out = torch.zeros(len(maps), maps[0].shape[0], h, w)
    for i, m in enumerate(maps):
        out[i, :, : m.shape[1], : m.shape[2]] = m
    return out


def train_head(ctx: StageContext, backbone, frames, truth, device):
    """The centre-point head, trained on the train split's frames (resumes per epoch); the
    frozen backbone's maps are computed once into a :class:`MapCache` in the work folder."""
    p = ctx.params.detect
    train = frames[frames["split"] == "train"].sort_values("frame_key")
    keys = train["frame_key"].tolist()
    with MapCache(ctx.workdir / "maps.cache") as maps:
        feature_maps(backbone, ctx.data_root, keys, device, p.batch_size,
                     "detect feature maps (train)", into=maps)
        return fit_head(ctx, backbone, keys, maps, truth, device)


def fit_head(ctx: StageContext, backbone, keys: list[str], maps, truth, device):
    """Epochs of the head over the frames ``keys`` whose maps are ``maps[i]``."""
    import numpy as np
    import torch

    from scenellm.data.vocab import STTRAN_OBJECT_CLASSES
    from scenellm.features.detection_head import CenterHead, head_loss, make_targets
    from scenellm.progress import figures, progress

    p = ctx.params.detect
    head = CenterHead(maps[0].shape[0], len(STTRAN_OBJECT_CLASSES) - 1, hidden=p.hidden,
                      seed=p.seed).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=p.lr)
    checkpoint = EpochCheckpoint(ctx.workdir / "checkpoint")
    state = checkpoint.restore(head, optimizer) or {"epoch": 0, "history": []}
    history = state["history"]
    per_epoch = -(-len(keys) // p.batch_size)
    resumed = f"at {state['epoch']}/{p.epochs} epochs" if state["epoch"] else None
    with progress("detect head", p.epochs, "epochs", resumed=resumed) as bar:
        bar.update(state["epoch"])
        for epoch in range(state["epoch"], p.epochs):
            order = np.random.default_rng([p.seed, epoch]).permutation(len(keys))
            sums = {"loss": 0.0, "focal": 0.0, "size": 0.0, "offset": 0.0}
            head.train()
            for step in range(per_epoch):
                rows = order[step * p.batch_size:(step + 1) * p.batch_size]
                batch = pad_maps([maps[i] for i in rows])
                targets = make_targets([truth[keys[i]][0] for i in rows],
                                       [truth[keys[i]][1] for i in rows],
                                       tuple(batch.shape[2:]), backbone.stride, head.num_classes)
                losses = head_loss(head(batch.to(device)), targets)
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                optimizer.step()
                for k in sums:
                    sums[k] += float(losses[k].detach()) / per_epoch
            record = {"epoch": epoch, **sums}
            history.append(record)
            ctx.log_metrics({f"detect_{k}": v for k, v in sums.items()}, epoch)
            checkpoint.save(head, optimizer, {"epoch": epoch + 1, "history": history})
            bar.update(epoch + 1, info=f"last epoch {figures(record, ('loss', 'focal'))}")
    return head.eval(), history


def head_config(head, p) -> dict:
    """What inference needs to rebuild the head and pick the nodes as this stage did."""
    return {"in_channels": head.body[0].in_channels, "num_classes": head.num_classes,
            "hidden": head.heat.in_channels, "budget": p.budget, "min_score": p.min_score,
            "batch_size": p.batch_size}  # frames per batch: the same float sums at inference


def prior_detections(truth_train: dict, test_keys: list[str], budget: int) -> dict:
    """The reference that never looks at the image: for every frame, each class's mean
    training box scored by the class's share of training boxes, best ``budget + 1`` kept."""
    import numpy as np

    from scenellm.data.detections import FrameDetections

    boxes = np.vstack([b for b, _ in truth_train.values()])
    labels = np.concatenate([lab for _, lab in truth_train.values()])
    classes, counts = np.unique(labels, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:budget + 1]
    mean = np.stack([boxes[labels == c].mean(0) for c in classes[order]]).astype(np.float32)
    prior = FrameDetections(mean, classes[order].astype(np.int64),
                            (counts[order] / counts.sum()).astype(np.float32))
    return dict.fromkeys(test_keys, prior)


def detector_metrics(truth: dict, found: dict, budget: int) -> dict:
    """AP@0.5 per class, mAP, and the recall of ground-truth boxes (any class, and same
    class) by the best 1 + ``budget`` detections of each frame."""
    from scenellm.data.vocab import STTRAN_OBJECT_CLASSES
    from scenellm.evaluation.detection import evaluate_detections

    keys = sorted(found)
    metrics = evaluate_detections([truth[k] for k in keys],
                                  [tuple(found[k]) for k in keys], budgets=(budget + 1,))
    return metrics.summary(STTRAN_OBJECT_CLASSES)


def best_first(found):
    """A frame's detections sorted by score, best first (ties keep file order)."""
    import numpy as np

    from scenellm.data.detections import FrameDetections

    order = np.argsort(-found.scores, kind="stable")
    return FrameDetections(found.boxes[order], found.labels[order], found.scores[order])


def run(ctx: StageContext) -> dict:
    import numpy as np
    import torch
    from safetensors.torch import save

    from scenellm.data.detections import Detections
    from scenellm.data.tables import read_tables
    from scenellm.data.vocab import PERSON_ID
    from scenellm.device import select_device
    from scenellm.features.detection_head import (
        HEAD_FILE,
        detect_nodes,
        detected_shard,
        load_head,
        scene_nodes,
    )
    from scenellm.features.store import FeatureStore
    from scenellm.io import atomic_write_bytes, atomic_write_text
    from scenellm.progress import progress
    from scenellm.stages.features import append_journal, load_journal

    start = time.perf_counter()
    p = ctx.params.detect
    if "sgdet" not in ctx.params.evaluate.modes:
        atomic_write_text(ctx.workdir / "skipped.txt", "evaluate.modes has no sgdet: no "
                          "detector was trained and no boxes were detected.\n")
        return {"sgdet": 0.0}
    device = select_device(p.device)
    tables = read_tables(ctx.input_path("prepare"))
    frames, objects = tables["frames"], tables["objects"]
    backbone = load_backbone(ctx.input_path("features"), device)
    truth = ground_truth(frames, objects)
    test = frames[frames["split"] == "test"].sort_values(["video_id", "frame_index"])
    history: list = []
    head = given = None
    if p.source == "train":
        if (ctx.workdir / "history.json").exists():  # a killed run had finished training
            head, _ = load_head(ctx.workdir, device)
            history = json.loads((ctx.workdir / "history.json").read_text())
        else:
            head, history = train_head(ctx, backbone, frames, truth, device)
            atomic_write_bytes(ctx.workdir / HEAD_FILE, save({k: v.contiguous().cpu()
                                                         for k, v in head.state_dict().items()}))
            atomic_write_text(ctx.workdir / "head.json", json.dumps(head_config(head, p)))
            atomic_write_text(ctx.workdir / "history.json", json.dumps(history, indent=1))
            killpoint("detect.head_saved")
        EpochCheckpoint(ctx.workdir / "checkpoint").clear()  # it was there for resuming
    else:
        given = Detections.read(Path(p.file))

    store = FeatureStore(ctx.workdir / "store")
    journal = load_journal(store.root) if store.root.exists() else {}
    store.root.mkdir(parents=True, exist_ok=True)
    nodes: dict = {}
    videos = sorted(test["video_id"].unique())
    with progress("detect test videos", len(videos), "videos") as bar, torch.no_grad():
        for video_id, rows in test.groupby("video_id", sort=True):
            if head is not None:
                found = detect_nodes(backbone, head, ctx.data_root, rows, device, p.batch_size,
                                     p.budget, p.min_score, PERSON_ID)
            else:
                found = [scene_nodes(best_first(given.for_frame(k)), PERSON_ID, p.budget,
                                     p.min_score) for k in rows["frame_key"]]
            nodes.update(zip(rows["frame_key"], found, strict=True))
            entry = journal.get(video_id)
            if not (entry and store.has_valid_shard(video_id, entry["sha256"])):
                tensors, meta = detected_shard(backbone, ctx.data_root, rows, found, device,
                                               p.batch_size, PERSON_ID)
                entry = {"sha256": store.write_shard(video_id, tensors, meta),
                         "num_objects": int(tensors["labels"].numel()),
                         "num_pairs": int(tensors["pair_idx"].shape[0]),
                         "num_frames": len(rows), "split": meta["split"]}
                killpoint("detect.shard_written")
                append_journal(store.root, video_id, entry)
                journal[video_id] = entry
            bar.update(advance=1)
    features_manifest = FeatureStore(ctx.input_path("features")).load_manifest()
    store.write_manifest(ctx.data_version, features_manifest["detector_config"],
                         features_manifest["feature_dim"], {v: journal[v] for v in videos})
    (store.root / "journal.jsonl").unlink(missing_ok=True)
    keys = list(nodes)
    Detections.from_flat(
        keys, [len(nodes[k].labels) for k in keys],
        np.concatenate([nodes[k].boxes for k in keys]).reshape(-1, 4),
        np.concatenate([nodes[k].labels for k in keys]),
        np.concatenate([nodes[k].scores for k in keys])).write(ctx.workdir / DETECTIONS)

    train_keys = set(frames.loc[frames["split"] == "train", "frame_key"])
    train_truth = {k: v for k, v in truth.items() if k in train_keys}
    test_truth = {k: truth[k] for k in test["frame_key"]}
    metrics = {"detector": detector_metrics(test_truth, nodes, p.budget),
               "prior": detector_metrics(test_truth, prior_detections(
                   train_truth, list(test_truth), p.budget), p.budget)}
    atomic_write_text(ctx.workdir / "metrics.json", json.dumps(metrics, indent=2,
                                                               sort_keys=True))
    flat = {f"{who}_{k}": v for who, m in metrics.items() for k, v in m.items()
            if not k.startswith("AP@")}  # per-class AP stays in metrics.json
    return {**flat, "sgdet": 1.0, "frames": len(test), "videos": len(videos),
            "nodes_per_frame": float(np.mean([len(n.labels) for n in nodes.values()])),
            "seconds": time.perf_counter() - start}
