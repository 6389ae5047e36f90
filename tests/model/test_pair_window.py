"""``model.pair_window``: each pair query reads its object's geometry in nearby frames,
found by class within the video as the windowed trees find it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_scenellm import build, save_vqvae, tiny_bert, video_batch  # noqa: F401 - fixture

from scenellm.evaluation.references import _window
from scenellm.model.batch import VideoBatch
from scenellm.model.checkpoint import load_finetuned, save_finetuned
from scenellm.model.geometry import (
    PAIR_GEOMETRY_DIM,
    pair_geometry,
    track_geometry,
    track_geometry_dim,
    window_offsets,
)
from scenellm.model.losses import sgg_loss

WINDOW = (-3, 2)
WIDTH = PAIR_GEOMETRY_DIM + 1  # present flag, then the geometry, per offset

# (video, object classes of the frame besides the person); frame positions count per video.
# Class 7 follows video 0 with a gap at position 2; class 9 leaves after position 1 but
# video 1 holds it at position 2, which video 0's pairs must never find; class 8 at video 0's
# last position must not be found from class 9 before position 0.
FRAMES = [(0, [7, 9]), (0, [9, 7]), (0, [11]), (0, [7]), (0, [7, 11]), (0, [7, 8]),
          (1, [9]), (1, [7, 9]), (1, [7, 9])]


def tracked_batch(seed: int = 0) -> VideoBatch:
    """One person and the listed objects per frame of :data:`FRAMES`, random boxes."""
    g = torch.Generator().manual_seed(seed)
    labels, frame_of_obj, video_of_obj, pairs, frame_of_pair = [], [], [], [], []
    for f, (v, classes) in enumerate(FRAMES):
        person = len(labels)
        for label in [1, *classes]:
            labels.append(label)
            frame_of_obj.append(f)
            video_of_obj.append(v)
            if label != 1:
                pairs.append((person, len(labels) - 1))
                frame_of_pair.append(f)
    n, p = len(labels), len(pairs)
    video_of_frame = torch.tensor([v for v, _ in FRAMES])
    frame_pos = torch.tensor([sum(w == v for w, _ in FRAMES[:f]) for f, (v, _) in
                              enumerate(FRAMES)])
    xy = torch.rand(n, 2, generator=g) * 0.5
    boxes_norm = torch.cat([xy, xy + 0.05 + torch.rand(n, 2, generator=g) * 0.4], 1)
    label_t = torch.tensor(labels)
    return VideoBatch(
        video_ids=["A.mp4", "B.mp4"], obj_feats=torch.randn(n, 8, generator=g),
        boxes=boxes_norm * 100, boxes_norm=boxes_norm, labels=label_t,
        is_person=label_t == 1, frame_of_obj=torch.tensor(frame_of_obj),
        video_of_obj=torch.tensor(video_of_obj),
        obj_pos=torch.cat([torch.arange(int((torch.tensor(video_of_obj) == v).sum()))
                           for v in (0, 1)]),
        video_of_frame=video_of_frame, frame_pos=frame_pos,
        frame_mask=torch.tensor([[True] * 6, [True] * 3 + [False] * 3]),
        pair_idx=torch.tensor(pairs), frame_of_pair=torch.tensor(frame_of_pair),
        video_of_pair=video_of_frame[torch.tensor(frame_of_pair)],
        union_feats=torch.randn(p, 8, generator=g),
        attention=torch.zeros(p, dtype=torch.long), spatial=torch.zeros(p, 6),
        contacting=torch.zeros(p, 17))


def _batch_track(batch: VideoBatch, window=WINDOW) -> torch.Tensor:
    return track_geometry(batch.boxes_norm, batch.pair_idx, batch.labels, batch.video_of_pair,
                          batch.frame_pos[batch.frame_of_pair], window)


def _expected_by_loop(batch: VideoBatch, window=WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Flags (P, W) and geometry (P, W, 24) found pair by pair: the pair of frame t + k of
    the same video whose object has the same class."""
    pairs = batch.pair_idx.tolist()
    where = [(int(batch.video_of_pair[i]), int(batch.labels[o]),
              int(batch.frame_pos[batch.frame_of_pair[i]])) for i, (_, o) in enumerate(pairs)]
    offsets = window_offsets(window)
    flags = np.zeros((len(pairs), len(offsets)))
    geometry = np.zeros((len(pairs), len(offsets), PAIR_GEOMETRY_DIM))
    for i, (video, label, t) in enumerate(where):
        for j, k in enumerate(offsets):
            for q, other in enumerate(where):
                if other == (video, label, t + k):
                    person, obj = pairs[q]
                    flags[i, j] = 1.0
                    geometry[i, j] = pair_geometry(batch.boxes_norm[[person]],
                                                   batch.boxes_norm[[obj]])[0].numpy()
    return flags, geometry


def test_window_holds_the_same_objects_pair_geometry_at_each_offset_and_flags_absence():
    batch = tracked_batch()
    got = _batch_track(batch).numpy()
    assert got.shape == (len(batch.pair_idx), track_geometry_dim(WINDOW)) == (15, 5 * WIDTH)
    got = got.reshape(len(batch.pair_idx), -1, WIDTH)
    flags, geometry = _expected_by_loop(batch)
    assert 0 < flags.sum() < flags.size  # both found and absent offsets are checked
    np.testing.assert_array_equal(got[..., 0], flags)
    np.testing.assert_allclose(got[..., 1:], geometry, rtol=0, atol=1e-6)
    flags_of = {(v, int(batch.labels[o]), f): got[i, :, 0].tolist() for i, (v, o, f) in
                enumerate(zip(batch.video_of_pair.tolist(), batch.pair_idx[:, 1].tolist(),
                              batch.frame_of_pair.tolist(), strict=True))}
    # offsets -3 -2 -1 +1 +2; class 7 of video 0 at position 3 misses position 2
    assert flags_of[(0, 7, 3)] == [1.0, 1.0, 0.0, 1.0, 1.0]
    # class 9 of video 0 at position 1: only position 0 (not video 1's position 2)
    assert flags_of[(0, 9, 1)] == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert flags_of[(0, 9, 0)] == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert (got[..., 1:][got[..., 0] == 0] == 0).all()


def test_window_finds_the_frames_the_windowed_trees_find():
    batch = tracked_batch(seed=1)
    pairs = batch.pair_idx.numpy()
    trees = np.stack(_window(batch, pairs, batch.boxes_norm.numpy().astype(np.float64),
                             WINDOW), axis=1)  # (P, W, 15), NaN where absent
    flags = _batch_track(batch).reshape(len(pairs), -1, WIDTH)[..., 0].numpy()
    np.testing.assert_array_equal(flags, ~np.isnan(trees).any(axis=-1))


def _moved_in_frame(batch: VideoBatch, frame: int, label: int) -> VideoBatch:
    """The batch with the box of class ``label`` in global frame ``frame`` shifted."""
    boxes = batch.boxes_norm.clone()
    hit = (batch.frame_of_obj == frame) & (batch.labels == label)
    assert hit.sum() == 1
    boxes[hit] = boxes[hit] * 0.5 + 0.3
    return replace(batch, boxes_norm=boxes)


def _frame_delta(model, batch: VideoBatch, other: VideoBatch, frame: int) -> float:
    pairs = batch.frame_of_pair == frame
    with torch.no_grad():
        a, b = model(batch), model(other)
    keys = ("attention_logits", "spatial_logits", "contacting_logits")
    return max(float((a[k][pairs] - b[k][pairs]).abs().max()) for k in keys)


def test_frame_context_keeps_frames_apart_with_a_window_and_video_context_reads_it(
        tiny_bert):  # noqa: F811
    """Class 4 sits in frames 0 and 1 of video A: moving its frame-1 box leaves frame 0's
    pairs unchanged per frame (the window finds nothing in a one-frame video) and changes
    them with the window on a video; without the window nothing else carries the box."""
    batch = video_batch()
    other = _moved_in_frame(batch, frame=1, label=4)
    per_frame = build(tiny_bert, context="frame", pair_window=WINDOW).eval()
    assert _frame_delta(per_frame, batch, other, frame=0) < 1e-6
    reads_box_only = dict(temporal="none", llm_mode="none", gate_alpha=1.0)
    windowed = build(tiny_bert, context="video", pair_window=WINDOW, **reads_box_only).eval()
    plain = build(tiny_bert, context="video", **reads_box_only).eval()
    assert _frame_delta(windowed, batch, other, frame=0) > 1e-4
    assert _frame_delta(plain, batch, other, frame=0) < 1e-6


@pytest.mark.parametrize("language", ["frames", "pairs"])
def test_window_trains_and_reloads_identically(tiny_bert, tmp_path, language):  # noqa: F811
    model = build(tiny_bert, pair_window=WINDOW, language=language)
    model.fit_geometry([video_batch()])  # statistics the reloaded model must bring back
    sgg_loss(model(video_batch()), video_batch().targets())[0].backward()
    first = model.predictor.geometry_mlp[0].weight  # columns: geometry, track, classes
    track_columns = first.grad[:, PAIR_GEOMETRY_DIM:PAIR_GEOMETRY_DIM
                               + track_geometry_dim(WINDOW)]
    assert track_columns.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        expected = model(video_batch())
    save_finetuned(model, tmp_path / "model", save_vqvae(model, tmp_path / "vqvae"))
    loaded = load_finetuned(tmp_path / "model")
    with torch.no_grad():
        got = loaded(video_batch())
    torch.testing.assert_close(got["contacting_logits"], expected["contacting_logits"],
                               rtol=0, atol=1e-6)


def test_predictor_built_with_a_window_refuses_a_query_without_its_track(tiny_bert):  # noqa: F811
    model = build(tiny_bert, pair_window=WINDOW)
    batch = video_batch()
    with pytest.raises(ValueError, match="track geometry of width"):
        model.predictor.pair_query(torch.zeros(len(batch.labels), 16), batch.boxes_norm,
                                   batch.labels, batch.pair_idx, batch.union_feats)
