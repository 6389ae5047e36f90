"""Oracle ceilings of a synthetic world: what the current frame can tell, against what the
past adds.

The generator writes, beside the annotations, ``world/states.json``: for every visible
object of every frame (annotation order), the id of its **state** (what that frame shows
of the (person, object) pair: class, kind of contact, pose, facing, where the hand is,
walking or not, occlusion, gaze cone, which side, the geometric spatial labels) and of its
**memory** (the world rules' counters over the pair's past: contact frames, frames at the
head, frames since walking, lifted or not, frames settled, frames since last in front of
the person). The world's labels are a function of the two.

Two oracles score every kept frame of a split with the project's evaluator (PREDCLS, with
constraint):

- **per frame**: each pair's predicate scores are the split's exact label frequencies among
  pairs in the same state — the best any predictor can do from one frame's world state;
- **history**: the same, among pairs in the same state *and* memory.

The gap between the two is what only history can tell. Scores are estimated on the split
they score (an oracle knows the world's distribution), so they are upper bounds, not
predictions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scenellm.data.ag import SPLITS, ActionGenome, FrameAnnotation
from scenellm.data.vocab import KINDS
from scenellm.errors import DataError

STATES_FILE = Path("world") / "states.json"
FORMAT = 1
KS = (10, 20, 50)


def write_states(root: Path, frames: dict[str, list[tuple[tuple, tuple]]]) -> None:
    """Write ``world/states.json``: per frame key, (state, memory) of each visible object in
    annotation order; keys are interned into two tables."""
    tables: dict[str, dict[str, int]] = {"states": {}, "memories": {}}

    def intern(table: str, value: tuple) -> int:
        return tables[table].setdefault(json.dumps(value), len(tables[table]))

    payload = {
        key: [[intern("states", s), intern("memories", m)] for s, m in pairs]
        for key, pairs in frames.items()
    }
    path = root / STATES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "format": FORMAT,
        "states": list(tables["states"]),
        "memories": list(tables["memories"]),
        "frames": payload,
    }, separators=(",", ":")))


def read_states(root: Path) -> dict[str, list[tuple[int, int]]] | None:
    """Frame key → (state id, memory id) per visible object; None when the data carries no
    world states (real Action Genome)."""
    path = root / STATES_FILE
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
        if payload.get("format") != FORMAT:
            raise ValueError(f"format {payload.get('format')!r}, expected {FORMAT}")
        return {k: [(int(s), int(m)) for s, m in v] for k, v in payload["frames"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: unreadable world states ({exc}).") from None


def _frequency_scores(ids: np.ndarray, objects: list) -> dict[str, np.ndarray]:
    """Each pair's predicate scores: the exact label frequencies among pairs with its key
    (the frequency baseline keyed by ``ids`` instead of the object class, no smoothing)."""
    from scenellm.evaluation.baseline import UNLABELLED, FrequencyBaseline

    def hot(kind: str) -> np.ndarray:
        out = np.zeros((len(objects), len(KINDS[kind])))
        for row, o in enumerate(objects):
            out[row, list(getattr(o, kind))] = 1.0
        return out

    attention = np.array([o.attention[0] if o.attention else UNLABELLED for o in objects])
    baseline = FrequencyBaseline().fit(ids, attention, hot("spatial"), hot("contacting"),
                                       smoothing=0.0)
    return baseline.predict(ids)


def _video_inputs(frames: list[FrameAnnotation], scores: dict[str, np.ndarray]):
    """STTran ground truth and predictions of one video from its frames and pair scores
    (rows in frame, then annotation order)."""
    import torch

    gt, boxes, labels, im_idx, pair_idx = [], [], [], [], []
    for f, frame in enumerate(frames):
        person = len(boxes)
        boxes.append([f, *frame.person_box])
        labels.append(1)
        nodes: list[dict] = [{"person_bbox": np.asarray([frame.person_box], np.float64)}]
        for o in frame.objects:
            im_idx.append(f)
            pair_idx.append([person, len(boxes)])
            boxes.append([f, *o.box])
            labels.append(o.class_id)
            nodes.append({
                "class": o.class_id, "bbox": np.asarray(o.box, np.float64),
                **{f"{kind}_relationship": torch.tensor(getattr(o, kind), dtype=torch.long)
                   for kind in KINDS}})
        gt.append(nodes)
    n = len(boxes)
    pred = {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.tensor(labels), "scores": torch.ones(n),
        "pred_labels": torch.tensor(labels), "pred_scores": torch.ones(n),
        "im_idx": torch.tensor(im_idx), "pair_idx": torch.tensor(pair_idx).reshape(-1, 2),
        **{f"{kind}_distribution": torch.tensor(scores[kind], dtype=torch.float32)
           for kind in KINDS},
    }
    return gt, pred


def _oracle(videos: dict[str, list[FrameAnnotation]], ids: np.ndarray, objects: list,
            ) -> tuple[dict[str, float], dict[str, tuple[float, int]]]:
    """R@K of the frequency oracle over ``ids`` (one per pair, video-major), and each
    video's (sum of frame R@20, frames) for bootstrap intervals."""
    from scenellm.evaluation.sttran_adapters import ag_evaluator

    scores = _frequency_scores(ids, objects)
    evaluator = ag_evaluator("predcls", "with")
    start, per_video = 0, {}
    for frames in videos.values():
        n = sum(len(f.objects) for f in frames)
        evaluator.evaluate_scene_graph(*_video_inputs(
            frames, {k: v[start:start + n] for k, v in scores.items()}))
        start += n
    recalls = evaluator.result_dict["predcls_recall"]
    start = 0
    for video, frames in videos.items():
        per_video[video] = (float(np.sum(recalls[20][start:start + len(frames)])), len(frames))
        start += len(frames)
    summary = evaluator.summary()
    return {f"R@{k}": round(100 * summary[f"R@{k}"], 2) for k in KS}, per_video


def ceilings(data: ActionGenome, states: dict[str, list[tuple[int, int]]]) -> dict:
    """Per split: per-frame and history oracle R@10/20/50 (PREDCLS, with constraint), their
    R@20 gap, and a 95 % video-bootstrap interval of the history oracle's R@20."""
    from scenellm.evaluation.bootstrap import interval

    out = {}
    for split in SPLITS:
        videos = data.split(split)
        objects, state_ids, memory_ids = [], [], []
        for frames in videos.values():
            for frame in frames:
                pairs = states.get(frame.key)
                if pairs is None or len(pairs) != len(frame.objects):
                    raise DataError(f"{STATES_FILE}: {frame.key} has "
                                    f"{'no' if pairs is None else len(pairs)} world states "
                                    f"for {len(frame.objects)} visible objects.")
                objects.extend(frame.objects)
                state_ids.extend(s for s, _ in pairs)
                memory_ids.extend(m for _, m in pairs)
        if not objects:
            continue
        state = np.asarray(state_ids)
        both = np.unique(np.stack([state, np.asarray(memory_ids)], 1), axis=0,
                         return_inverse=True)[1].reshape(-1)
        per_frame, _ = _oracle(videos, state, objects)
        history, per_video = _oracle(videos, both, objects)
        sums, counts = np.asarray(list(per_video.values())).T
        _, low, high = interval(sums, counts)
        out[split] = {
            "per_frame": per_frame,
            "history": history,
            "gap_R@20": round(history["R@20"] - per_frame["R@20"], 2),
            "history_R@20_ci95": [round(100 * low, 2), round(100 * high, 2)],
        }
    return out
