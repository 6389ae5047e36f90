"""Post-hoc logit adjustment (``model.logit_adjust``) and the training pairs' predicate
prior it divides by."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_scenellm import build, save_vqvae, tiny_bert, video_batch  # noqa: F401 - fixture

from scenellm.data.vocab import ATTENTION, CONTACTING, SPATIAL
from scenellm.model.checkpoint import load_finetuned, save_finetuned
from scenellm.model.losses import predicate_prior

KEYS = ("attention_logits", "spatial_logits", "contacting_logits")
WIDTHS = (len(ATTENTION), len(SPATIAL), len(CONTACTING))


def _prior_by_loop(batches) -> np.ndarray:
    """Shares counted pair by pair in plain Python, smoothed as documented."""
    att, spa, con = [0] * WIDTHS[0], [0] * WIDTHS[1], [0] * WIDTHS[2]
    labelled = pairs = 0
    for batch in batches:
        for row in range(len(batch.pair_idx)):
            a = int(batch.attention[row])
            if a >= 0:
                att[a] += 1
                labelled += 1
            pairs += 1
            for k in range(WIDTHS[1]):
                spa[k] += int(batch.spatial[row, k] > 0)
            for k in range(WIDTHS[2]):
                con[k] += int(batch.contacting[row, k] > 0)
    return np.array([(c + 1) / (labelled + 3) for c in att] +
                    [(c + 1) / (pairs + 2) for c in spa] + [(c + 1) / (pairs + 2) for c in con])


def test_prior_counts_every_pair_of_every_batch_and_ignores_unlabelled_attention():
    first, second = video_batch(0), video_batch(1)
    second.attention[0] = -100
    prior = predicate_prior([first, second])
    np.testing.assert_allclose(prior, _prior_by_loop([first, second]), rtol=0, atol=1e-12)
    assert abs(sum(prior[:3]) - 1) < 1e-12  # attention: one label per pair
    assert prior != predicate_prior([first])


def _prior() -> list[float]:
    return predicate_prior([video_batch(0), video_batch(1), video_batch(2)])


def test_eval_logits_lose_tau_log_prior_and_training_logits_stay_raw(tiny_bert):  # noqa: F811
    prior = _prior()
    plain = build(tiny_bert, predicate_prior=prior).eval()
    adjusted = build(tiny_bert, predicate_prior=prior, logit_adjust=0.75).eval()
    adjusted.load_state_dict(plain.state_dict())
    batch = video_batch()
    with torch.no_grad():
        raw, out = plain(batch), adjusted(batch)
    shift = 0.75 * np.log(np.array(prior))
    start = 0
    for key, width in zip(KEYS, WIDTHS, strict=True):
        expected = raw[key].numpy() - shift[start:start + width]
        np.testing.assert_allclose(out[key].numpy(), expected, rtol=0, atol=1e-5)
        start += width
    # the rarest contacting predicate gains the most
    gain = (out["contacting_logits"] - raw["contacting_logits"])[0].numpy()
    assert gain.argmax() == int(np.argmin(prior[-WIDTHS[2]:]))
    adjusted.train()
    plain.train()
    torch.manual_seed(0)
    trained_adjusted = adjusted(batch)
    torch.manual_seed(0)
    trained_plain = plain(batch)
    for key in KEYS:  # the loss sees raw logits: the adjustment is post hoc
        torch.testing.assert_close(trained_adjusted[key], trained_plain[key], rtol=0, atol=0)


def test_tau_zero_changes_nothing_and_tau_without_prior_is_refused(tiny_bert):  # noqa: F811
    plain = build(tiny_bert).eval()
    with_prior = build(tiny_bert, predicate_prior=_prior()).eval()
    with_prior.load_state_dict(plain.state_dict())
    batch = video_batch()
    with torch.no_grad():
        a, b = plain(batch), with_prior(batch)
    for key in KEYS:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    with pytest.raises(ValueError, match="predicate_prior"):
        with torch.no_grad():
            build(tiny_bert, logit_adjust=0.5).eval()(batch)


def test_saved_model_keeps_its_prior_and_tau(tiny_bert, tmp_path):  # noqa: F811
    model = build(tiny_bert, predicate_prior=_prior(), logit_adjust=0.5).eval()
    save_finetuned(model, tmp_path / "model", save_vqvae(model, tmp_path / "vq"))
    loaded = load_finetuned(tmp_path / "model").eval()
    assert loaded.config.predicate_prior == model.config.predicate_prior
    assert loaded.config.logit_adjust == 0.5
    batch = video_batch()
    with torch.no_grad():
        a, b = model(batch), loaded(batch)
    for key in KEYS:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
