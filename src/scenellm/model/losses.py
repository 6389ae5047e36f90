"""Training loss of the SGG predictor.

    L = w_att · CE(attention) + w_spa · BCE(spatial) + w_con · BCE(contacting)
        + w_obj · CE(object classes)        (object term only when object logits are given)
        + w_aux · aux                       (a head's own weighted auxiliary loss, e.g. MoE
                                             load balancing, when it gives ``aux_loss``)

Attention is one label per pair (softmax cross-entropy, kind-local index, -100 ignored);
spatial and contacting are multi-label (sigmoid binary cross-entropy, mean over pairs ×
predicates; with ``finetune.balance`` β > 0 each predicate's positive term weighs
((1 − p) / p) ** β, p its share of the training pairs); object classes use STTran ids
(0 = background, 1 = person).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import torch
import torch.nn.functional as F

LOSS_PARTS: tuple[str, ...] = ("attention", "spatial", "contacting", "object", "aux")


def _mean_or_zero(loss_fn, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """loss_fn's mean, or a graph-connected 0 when there are no rows (mean of none is NaN)."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return loss_fn(logits, target)


def sgg_loss(
    outputs: Mapping[str, torch.Tensor | None],
    targets: Mapping[str, torch.Tensor],
    weights: Mapping[str, float] | None = None,
    pos_weight: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the predicate (and object) losses.

    Args:
        outputs: SGGPredictor output: attention_logits (P, 3), spatial_logits (P, 6),
            contacting_logits (P, 17), object_logits (N, C) or None.
        targets: attention (P,) long, spatial (P, 6) and contacting (P, 17) multi-hot,
            objects (N,) long (needed when object_logits is given).
        weights: per-part weights keyed by ``LOSS_PARTS``; missing parts weigh 1.
        pos_weight: optional per-predicate weights of the positive term of the spatial (6,)
            and contacting (17,) binary cross-entropies (see :func:`positive_weights`).

    Returns:
        total (scalar tensor, differentiable) and the unweighted parts plus "total" as floats.
    """
    weights = dict(weights or {})
    unknown = set(weights) - set(LOSS_PARTS)
    if unknown:
        raise ValueError(f"unknown loss weights {sorted(unknown)}; known: {list(LOSS_PARTS)}")
    pos_weight = pos_weight or {}

    def binary(kind: str) -> torch.Tensor:
        logits = outputs[f"{kind}_logits"]
        weight = pos_weight.get(kind)
        return _mean_or_zero(
            partial(F.binary_cross_entropy_with_logits,
                    pos_weight=None if weight is None else weight.to(logits)),
            logits, targets[kind].to(logits.dtype))

    parts = {
        "attention": _mean_or_zero(
            F.cross_entropy, outputs["attention_logits"], targets["attention"].long()
        ),
        "spatial": binary("spatial"),
        "contacting": binary("contacting"),
    }
    object_logits = outputs.get("object_logits")
    if object_logits is not None:
        if "objects" not in targets:
            raise KeyError("object_logits were predicted but targets has no 'objects' labels")
        parts["object"] = _mean_or_zero(F.cross_entropy, object_logits, targets["objects"].long())
    if outputs.get("aux_loss") is not None:
        parts["aux"] = outputs["aux_loss"]
    total = sum(weights.get(name, 1.0) * loss for name, loss in parts.items())
    logged = {name: float(loss.detach()) for name, loss in parts.items()}
    logged["total"] = float(total.detach())
    return total, logged


def predicate_prior(batches) -> list[float]:
    """Each predicate's share of the pairs of ``batches`` (VideoBatch-like, with attention
    (P,) kind-local ids, -100 ignored, and spatial / contacting (P, K) multi-hot), in
    ATTENTION, SPATIAL, CONTACTING order, Laplace-smoothed so that none is 0: attention
    (count + 1) / (pairs + 3) over its classes, a spatial or contacting predicate
    (positives + 1) / (pairs + 2)."""
    from scenellm.data.vocab import ATTENTION, CONTACTING, SPATIAL

    attention = torch.zeros(len(ATTENTION), dtype=torch.float64)
    spatial = torch.zeros(len(SPATIAL), dtype=torch.float64)
    contacting = torch.zeros(len(CONTACTING), dtype=torch.float64)
    labelled = pairs = 0
    for batch in batches:
        kept = batch.attention[batch.attention >= 0].long()
        attention += torch.bincount(kept, minlength=len(ATTENTION)).double()
        labelled += len(kept)
        spatial += batch.spatial.double().sum(0)
        contacting += batch.contacting.double().sum(0)
        pairs += len(batch.spatial)
    shares = torch.cat([(attention + 1) / (labelled + len(ATTENTION)),
                        (spatial + 1) / (pairs + 2), (contacting + 1) / (pairs + 2)])
    return shares.tolist()


def positive_weights(prior: list[float], power: float) -> dict[str, torch.Tensor]:
    """Class-balanced positive weights ((1 − p) / p) ** power of the spatial and contacting
    predicates, p their share of the training pairs (:func:`predicate_prior` order): power 1
    gives positives and negatives of every predicate equal total weight, 0 plain BCE."""
    from scenellm.data.vocab import ATTENTION, SPATIAL

    share = torch.tensor(prior, dtype=torch.float64)
    weight = ((1 - share) / share) ** power
    start = len(ATTENTION)
    return {"spatial": weight[start:start + len(SPATIAL)].float(),
            "contacting": weight[start + len(SPATIAL):].float()}
