"""``model.union``: the pair query reads the union-box features raw or standardized by the
object features' mean and std."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_scenellm import FEAT, build, tiny_bert, video_batch  # noqa: F401 - fixture

from scenellm.config.load import load_params
from scenellm.errors import UserError

PARAMS = Path(__file__).resolve().parents[2] / "params"
KEYS = ("attention_logits", "spatial_logits", "contacting_logits")


def _with_stats(model, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    model.feat_mean.copy_(torch.randn(FEAT, generator=g) * 3)
    model.feat_std.copy_(torch.rand(FEAT, generator=g) * 4 + 0.5)
    return model.eval()


@pytest.mark.parametrize("language", ["frames", "pairs"])
def test_standardized_union_is_the_raw_model_fed_standardized_features(tiny_bert, language):  # noqa: F811
    standardized = _with_stats(build(tiny_bert, union="standardized", language=language))
    raw = _with_stats(build(tiny_bert, union="raw", language=language))
    raw.load_state_dict(standardized.state_dict())
    batch = video_batch()
    fed = replace(batch, union_feats=(batch.union_feats - raw.feat_mean) / raw.feat_std)
    with torch.no_grad():
        out, same, differ = standardized(batch), raw(fed), raw(batch)
    for key in KEYS:
        torch.testing.assert_close(out[key], same[key], rtol=0, atol=1e-5)
    assert max(float((out[k] - differ[k]).abs().max()) for k in KEYS) > 1e-3


def test_weights_saved_without_the_switch_read_raw_union_features_and_bad_values_are_refused():
    from scenellm.model.scenellm import SceneLLMConfig

    assert SceneLLMConfig(feature_dim=4).union == "raw"
    with pytest.raises(UserError, match="model.union"):
        load_params(PARAMS, ["model.union=whitened"])
