"""SGG predictor: pair queries, per-video decoding over LLM context, gated fusion, heads."""

from __future__ import annotations

import pytest
import torch

from scenellm.model.losses import sgg_loss
from scenellm.model.predictor import (
    GEOMETRY_MIN_STD,
    SGGPredictor,
    pad_by_video,
    pair_geometry,
    sgcls_labels,
)

OBJ, UNION, CTX = 6, 5, 7


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Two videos: 9 objects, 7 pairs (4 of video 0, 3 of video 1, interleaved)."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(9, 2, generator=gen) * 0.6
    boxes = torch.cat([xy, xy + torch.rand(9, 2, generator=gen) * 0.3 + 0.05], dim=1)
    return {
        "obj_tokens": torch.randn(9, OBJ, generator=gen),
        "boxes": boxes,
        "labels": torch.tensor([1, 5, 9, 1, 12, 1, 3, 4, 1]),
        "pair_idx": torch.tensor([[0, 1], [0, 2], [5, 6], [3, 4], [5, 7], [3, 2], [8, 7]]),
        "union_feats": torch.randn(7, UNION, generator=gen),
        "video_of_pair": torch.tensor([0, 0, 1, 0, 1, 0, 1]),
    }


def _context(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(2, 5, CTX) context; video 0 has 3 real positions, video 1 all 5."""
    context = torch.randn(2, 5, CTX, generator=torch.Generator().manual_seed(seed))
    padding = torch.tensor([[False, False, False, True, True], [False] * 5])
    return context, padding


def _model(**kwargs) -> SGGPredictor:
    torch.manual_seed(0)
    kwargs = {"d_model": 16, "num_heads": 2, "dropout": 0.0} | kwargs
    return SGGPredictor(OBJ, UNION, CTX, **kwargs).eval()


def _logits(out: dict) -> torch.Tensor:
    keys = ("attention_logits", "spatial_logits", "contacting_logits")
    return torch.cat([out[k] for k in keys], dim=1)  # (P, 26)


def test_output_shapes():
    model, batch = _model(), _batch()
    context, padding = _context()
    out = model(**batch, context=context, context_padding_mask=padding, predict_objects=True)
    assert out["attention_logits"].shape == (7, 3)
    assert out["spatial_logits"].shape == (7, 6)
    assert out["contacting_logits"].shape == (7, 17)
    assert out["object_logits"].shape == (9, 37)
    assert model(**batch)["object_logits"] is None


def test_videos_do_not_see_each_others_context():
    model, batch = _model(), _batch()
    context, padding = _context()
    before = _logits(model(**batch, context=context, context_padding_mask=padding))
    context[1] += torch.randn_like(context[1])
    after = _logits(model(**batch, context=context, context_padding_mask=padding))
    video0 = batch["video_of_pair"] == 0
    torch.testing.assert_close(after[video0], before[video0], rtol=0, atol=1e-6)
    assert not torch.allclose(after[~video0], before[~video0], atol=1e-3)


def test_padded_context_is_ignored_and_matches_unpadded_run():
    model, batch = _model(), _batch()
    context, padding = _context()
    before = _logits(model(**batch, context=context, context_padding_mask=padding))
    context[0, 3:] = 100.0 * torch.randn(2, CTX)
    after = _logits(model(**batch, context=context, context_padding_mask=padding))
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)

    # Video 0 alone, with only its 3 real context positions, gives the same outputs.
    video0 = batch["video_of_pair"] == 0
    alone = {**batch, "pair_idx": batch["pair_idx"][video0]}
    alone["union_feats"] = batch["union_feats"][video0]
    alone["video_of_pair"] = torch.zeros(int(video0.sum()), dtype=torch.long)
    single = _logits(model(**alone, context=context[:1, :3]))
    torch.testing.assert_close(single, before[video0], rtol=0, atol=1e-5)


def test_gate_alpha_one_ignores_context():
    model, batch = _model(gate_alpha=1.0), _batch()
    context, padding = _context()
    with_context = _logits(model(**batch, context=context, context_padding_mask=padding))
    without = _logits(model(**batch, context=None))
    torch.testing.assert_close(with_context, without, rtol=0, atol=1e-6)
    assert not torch.allclose(
        without,
        _logits(_model()(**batch, context=context, context_padding_mask=padding)),
        atol=1e-3,
    )


def test_learned_gate_starts_at_gate_alpha():
    fixed, learned = _model(gate_alpha=0.3), _model(gate_alpha=0.3, learn_gate=True)
    learned.load_state_dict(fixed.state_dict(), strict=False)
    batch, (context, padding) = _batch(), _context()
    kwargs = {**batch, "context": context, "context_padding_mask": padding}
    torch.testing.assert_close(_logits(learned(**kwargs)), _logits(fixed(**kwargs)))


def test_context_positions_keep_videos_apart():
    model, batch = _model(), _batch()
    context, padding = _context()
    pos = torch.tensor([0, 1, 4, 2, 3, 2, 0])
    kwargs = {**batch, "context_padding_mask": padding, "context_pos_of_pair": pos}
    before = _logits(model(**kwargs, context=context))
    assert not torch.allclose(
        before, _logits(model(**batch, context=context, context_padding_mask=padding))
    )
    context[1] += 1.0
    after = _logits(model(**kwargs, context=context))
    video0 = batch["video_of_pair"] == 0
    torch.testing.assert_close(after[video0], before[video0], rtol=0, atol=1e-6)


def test_pad_by_video_round_trip():
    x = torch.arange(14.0).reshape(7, 2)
    video = torch.tensor([1, 0, 1, 3, 1, 0, 3])
    padded, mask, slot = pad_by_video(x, video, num_videos=4)
    assert padded.shape == (4, 3, 2)
    assert mask.tolist() == [
        [False, False, True],
        [False, False, False],
        [True, True, True],
        [False, False, True],
    ]
    assert slot.tolist() == [0, 0, 1, 0, 2, 1, 1]
    torch.testing.assert_close(padded[video, slot], x)
    assert padded[mask].abs().sum() == 0


def test_pair_geometry_hand_computed():
    sub = torch.tensor([[0.0, 0.0, 0.4, 0.2]])
    obj = torch.tensor([[0.2, 0.1, 0.4, 0.5]])
    got = pair_geometry(sub, obj)[0]
    assert got.shape == (24,)
    torch.testing.assert_close(got[:9], torch.tensor([0, 0, 0.4, 0.2, 0.2, 0.1, 0.4, 0.2, 0.08]))
    inter = 0.2 * 0.1
    expected = torch.tensor(
        [
            (0.3 - 0.2) / 0.4,
            (0.3 - 0.1) / 0.2,
            torch.log(torch.tensor(0.2 / 0.4)),
            torch.log(torch.tensor(0.4 / 0.2)),
            inter / (0.08 + 0.08 - inter),
            inter / 0.08,
        ]
    )
    torch.testing.assert_close(got[18:], expected)


def test_fit_geometry_standardises_each_column_by_the_training_pairs():
    """The query's geometry is what the MLP reads after fitting: per column mean 0 and
    spread 1 on the pairs it was fitted on (numpy as the reference), floored spread for a
    column constant there; a model left unfitted reads the geometry unscaled."""
    model, batch = _model(), _batch()
    rows = SGGPredictor.geometry(batch["boxes"], batch["pair_idx"], None)
    rows[:, 3] = 0.25  # a column constant in training
    model.fit_geometry(rows)
    reference = rows.numpy().astype("float64")
    np_mean, np_std = reference.mean(axis=0), reference.std(axis=0, ddof=1)
    torch.testing.assert_close(model.geometry_mean, torch.as_tensor(np_mean, dtype=torch.float32))
    expected_std = torch.as_tensor(np_std, dtype=torch.float32).clamp(min=GEOMETRY_MIN_STD)
    torch.testing.assert_close(model.geometry_std, expected_std)
    assert float(model.geometry_std[3]) == pytest.approx(GEOMETRY_MIN_STD)
    standardised = (rows - model.geometry_mean) / model.geometry_std
    keep = torch.arange(rows.shape[1]) != 3
    torch.testing.assert_close(standardised[:, keep].mean(0), torch.zeros(int(keep.sum())),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(standardised[:, keep].std(0), torch.ones(int(keep.sum())),
                               atol=1e-4, rtol=0)


def test_fit_geometry_changes_the_queries_and_refuses_rows_of_another_width():
    model, batch = _model(), _batch()
    before = _logits(model(**batch))
    model.fit_geometry(SGGPredictor.geometry(batch["boxes"], batch["pair_idx"], None))
    assert (_logits(model(**batch)) - before).abs().max() > 1e-4
    with pytest.raises(ValueError, match="columns"):
        model.fit_geometry(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="at least 2"):
        model.fit_geometry(torch.zeros(1, len(model.geometry_mean)))


def test_sgcls_labels_keep_persons():
    logits = torch.tensor([[0.0, 9.0, 1.0, 2.0], [5.0, 9.0, 3.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    labels = sgcls_labels(logits, torch.tensor([True, False, False]))
    assert labels.tolist() == [1, 2, 2]


@pytest.mark.parametrize("kwargs", [{"gate_alpha": 1.0, "learn_gate": True}, {"num_heads": 3}])
def test_rejects_bad_config(kwargs):
    with pytest.raises(ValueError):
        _model(**kwargs)


@pytest.fixture
def one_thread():
    """Tiny matmuls: extra threads only contend on a shared CI machine (25x slower seen)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_overfits_a_small_batch(one_thread):
    model, batch = _model(learn_gate=True).train(), _batch()
    context, padding = _context()
    gen = torch.Generator().manual_seed(2)
    targets = {
        "attention": torch.randint(0, 3, (7,), generator=gen),
        "spatial": (torch.rand(7, 6, generator=gen) < 0.3).float(),
        "contacting": (torch.rand(7, 17, generator=gen) < 0.2).float(),
        "objects": batch["labels"],
    }
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        out = model(**batch, context=context, context_padding_mask=padding, predict_objects=True)
        loss, _parts = sgg_loss(out, targets)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
