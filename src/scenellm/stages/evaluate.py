"""``evaluate``: the fine-tuned SceneLLM beside its references on the test split, in PREDCLS,
SGCLS and (``evaluate.modes`` with ``sgdet``) SGDET, under the with / semi / no constraints
(STTran's evaluator semantics). In SGDET the model and every reference read the detect
stage's nodes (boxes, labels and scores of the detector) and a triplet counts only when both
boxes overlap ground truth (IoU >= ``evaluate.iou_threshold``).

References, fitted on the train split and scored on the same frames by the same evaluator:
the frequency baseline, box-only gradient-boosted trees per frame and with frames t-3..t+2
(:mod:`scenellm.evaluation.references`). In SGCLS every reference takes its object labels
from one fixed classifier (logistic regression on the detector features), never from the
model under test.

Recall is also split by subject–object distance (SPADE's near / far, with constraint;
:mod:`scenellm.evaluation.distance`) for the model and every reference, and the model's
component statistics (expert use, gate values) are recorded.

Writes ``metrics.json`` (R@10/20/50/100, both mR@K definitions, per-predicate recall),
``distance.json``, ``diagnostics.json``,
``summary.json`` (flat numbers for ``dvc metrics``, with the probes: Δ R@20 when frames
are shuffled, OT is off or LLM states come from another video), ``table.txt``, PNG plots, the
model's ranked triplets (``predictions.parquet``, with constraint, what the registry model
returns) and a few test videos drawn with their scene graphs (``examples/``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

from scenellm.evaluation import PRIMARY_METRIC
from scenellm.stages.base import StageContext, StageSpec

SPEC = StageSpec(
    name="evaluate",
    sections=("evaluate",),
    upstream=("prepare", "features", "detect", "finetune"),
)
PRIMARY = PRIMARY_METRIC
WINDOW = (-3, 2)  # frames the temporal trees see around each pair's frame
EXAMPLES = 3  # test videos drawn as GIFs (frames, boxes, top relations beside ground truth)
REFERENCE_CHUNK = 32  # test videos the trees score in one predict call per classifier
FLUSH_FRAMES = 256  # frames an evaluator queues before scoring them (its memory, at any size)
CLASSIFIER_OBJECTS = 20_000  # train objects the fixed SGCLS classifier is fitted on, at most


def evaluator(mode: str, constraint: str, p):
    """An AG evaluator that scores its queue every ``FLUSH_FRAMES`` frames."""
    from scenellm.evaluation.sttran_adapters import ag_evaluator

    out = ag_evaluator(mode, constraint, p.iou_threshold, p.semi_threshold)
    out.flush_frames = FLUSH_FRAMES
    return out


def evaluators(mode: str, p) -> dict:
    from scenellm.evaluation.sttran_adapters import CONSTRAINTS

    return {c: evaluator(mode, c, p) for c in CONSTRAINTS}


def fit_references(data, videos: list[str], seed: int) -> tuple[dict, object]:
    """The references, fitted on the train split's pairs: the frequency baseline, box-only
    trees per frame and with frames t-3..t+2; and the fixed object classifier that gives
    every reference its SGCLS labels, fitted on at most ~``CLASSIFIER_OBJECTS`` train
    objects (all of them on the default data; a seeded sample beyond, so its float64 copy
    stays ~40 MB at any size)."""
    import numpy as np

    from scenellm.evaluation.baseline import FrequencyBaseline
    from scenellm.evaluation.references import BoxTrees, ObjectClassifier, pair_features
    from scenellm.progress import progress

    parts: dict[str, list] = {k: [] for k in ("classes", "att", "spa", "con", "frame",
                                              "window", "feats", "labels")}
    # the classifier's sample: every train object up to CLASSIFIER_OBJECTS (the manifest's
    # pair counts are the objects), else each one with the same seeded chance
    total = sum(data.manifest[v]["num_pairs"] for v in videos)
    share = min(1.0, CLASSIFIER_OBJECTS / max(total, 1))
    draw = np.random.default_rng(seed)
    for vid in videos:  # one video per batch: the window follows objects within it
        batch = data.batch([vid])
        parts["classes"].append(batch.labels[batch.pair_idx[:, 1]].numpy())
        parts["att"].append(batch.attention.numpy())
        parts["spa"].append(batch.spatial.numpy())
        parts["con"].append(batch.contacting.numpy())
        parts["frame"].append(pair_features(batch))
        parts["window"].append(pair_features(batch, WINDOW))
        objects = (~batch.is_person).numpy()
        if share < 1.0:
            objects &= draw.random(len(objects)) < share
        parts["feats"].append(batch.obj_feats.numpy()[objects])
        parts["labels"].append(batch.labels.numpy()[objects])
    cat = {k: np.concatenate(parts.pop(k)) for k in list(parts)}  # each list freed once joined
    targets = (cat["att"], cat["spa"], cat["con"])
    fits = {  # minutes on the default data: one progress step per reference
        "baseline": lambda: FrequencyBaseline().fit(cat["classes"], *targets),
        "trees": lambda: BoxTrees(seed=seed).fit(cat["frame"], *targets),
        "trees_temporal": lambda: BoxTrees(window=WINDOW, seed=seed).fit(cat["window"],
                                                                          *targets),
        "classifier": lambda: ObjectClassifier(seed=seed).fit(cat["feats"], cat["labels"]),
    }
    references = {}
    with progress("evaluate references", len(fits), "fitted") as bar:
        for name, fit in fits.items():
            bar.update(info=f"fitting {name}")
            references[name] = fit()
            bar.update(advance=1, info=f"{name} fitted")
    return references, references.pop("classifier")


def baseline_outputs(baseline, out: dict, batch) -> dict:
    """Frequency-baseline predicate scores for the pairs of a batch, given the object labels
    in ``out`` (ground truth in PREDCLS, the fixed classifier's in SGCLS)."""
    import torch

    pred = baseline.predict(out["labels"][batch.pair_idx[:, 1]].cpu().numpy())
    to = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    eps = 1e-6
    return {**out, "attention_logits": to(pred["attention"]),
            "spatial_logits": torch.logit(to(pred["spatial"]).clamp(eps, 1 - eps)),
            "contacting_logits": torch.logit(to(pred["contacting"]).clamp(eps, 1 - eps))}


def reference_outputs(name: str, reference, labels: list[dict], batches: list) -> list[dict]:
    """A reference's outputs for several one-video batches, each with its object labels;
    the trees score all of them in one call per classifier."""
    if name == "baseline":
        return [baseline_outputs(reference, out, batch)
                for out, batch in zip(labels, batches, strict=True)]
    return reference.outputs_many(batches, labels)


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run(ctx: StageContext) -> dict:
    from scenellm.memory import fixed_mmap_threshold

    fixed_mmap_threshold()  # the references' arrays come and go: RSS flat as data grows
    with ExitStack() as stack:
        return _run(ctx, stack)


def _run(ctx: StageContext, stack: ExitStack) -> dict:
    from functools import partial

    import torch

    from scenellm.data import vocab
    from scenellm.device import select_device
    from scenellm.evaluation.distance import DistanceRecall
    from scenellm.evaluation.report import (
        plot_distance,
        plot_per_predicate,
        plot_recalls,
        predicate_support,
        render_distance_table,
        render_table,
    )
    from scenellm.evaluation.sttran_adapters import (
        CONSTRAINTS,
        sttran_gt,
        sttran_predictions,
    )
    from scenellm.inference.scene_graphs import (
        TripletWriter,
        read_triplets,
        scene_graphs,
        triplet_table,
    )
    from scenellm.inference.show import write_examples
    from scenellm.model.checkpoint import load_finetuned
    from scenellm.model.components.registry import collect_diagnostics, reset_diagnostics
    from scenellm.model.scene_graph_data import SceneGraphData
    from scenellm.progress import progress

    p = ctx.params.evaluate
    device = select_device("auto")
    data = SceneGraphData(ctx.input_path("features"), ctx.input_path("prepare"))
    detected = SceneGraphData(ctx.input_path("detect") / "store", ctx.input_path("prepare")) \
        if "sgdet" in p.modes else None
    model = load_finetuned(ctx.input_path("finetune") / "model", device=str(device))
    references, classifier = fit_references(data, data.videos("train"), seed=0)
    test = data.videos("test")
    results = {who: {} for who in ("model", *references)}
    frames: dict[str, list[int]] = {}  # per mode: frames of each test video, in order
    per_video: dict[str, dict] = {}
    distance: dict[str, dict] = {who: {} for who in results}
    distance_sums: dict[str, dict] = {}
    reset_diagnostics(model)
    # the model's ranked triplets (with constraint), as the registry model returns them
    predictions = stack.enter_context(TripletWriter(ctx.workdir / "predictions.parquet"))
    for mode in p.modes:
        with progress(f"evaluate {mode}", len(test), "videos") as bar, torch.no_grad():
            scored = {who: evaluators(mode, p) for who in results}
            by_distance = {who: DistanceRecall(partial(evaluator, mode, "with", p))
                           for who in results}
            frames[mode] = []
            source = detected if mode == "sgdet" else data  # SGDET: the detector's nodes
            for chunk in chunks(scene_graphs(model, source, test, mode, device),
                                REFERENCE_CHUNK):
                batches = [batch for batch, _ in chunk]
                labels = [out if mode != "sgcls" else
                          classifier.outputs(batch, len(vocab.STTRAN_OBJECT_CLASSES))
                          for batch, out in chunk]
                reference = {name: reference_outputs(name, ref, labels, batches)
                             for name, ref in references.items()}
                for i, (batch, out) in enumerate(chunk):
                    vid = batch.video_ids[0]
                    gt = sttran_gt(data.store.read_shard(vid), data.object_labels(vid))
                    frames[mode].append(len(gt))
                    width = data.frame_size(vid)[0]
                    outputs = {"model": out, **{name: reference[name][i] for name in references}}
                    for who, who_out in outputs.items():
                        pred = sttran_predictions(batch, who_out, 0)
                        for c in CONSTRAINTS:
                            scored[who][c].evaluate_scene_graph(gt, pred)
                        by_distance[who].evaluate_scene_graph(gt, pred, width)
                    predictions.write(triplet_table(source, batch, out, mode))
                    bar.update(advance=1)
            for who in results:
                results[who][mode] = {c: {**scored[who][c].summary(),
                                          "support": predicate_support(scored[who][c])}
                                      for c in CONSTRAINTS}
            per_video[mode] = video_sums(scored, frames[mode])
            for who in results:
                distance[who][mode] = by_distance[who].summary()
            distance_sums[mode] = {who: d.video_sums() for who, d in by_distance.items()}
    stack.close()  # predictions.parquet complete
    diagnostics = collect_diagnostics(model)
    write_examples(ctx.data_root, data, read_triplets(ctx.workdir / "predictions.parquet",
                                                      test[:EXAMPLES]),
                   test[:EXAMPLES], ctx.workdir / "examples")
    (ctx.workdir / "metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    (ctx.workdir / "per_video.json").write_text(json.dumps(
        {"videos": test, "frames": frames, "recall_sums": per_video,
         "distance": distance_sums}, sort_keys=True))
    (ctx.workdir / "distance.json").write_text(json.dumps(distance, indent=2, sort_keys=True))
    (ctx.workdir / "diagnostics.json").write_text(json.dumps(diagnostics, indent=2))
    flat = {**flat_metrics(results), **flat_distance(distance), **diagnostics,
            **probe_deltas(model, data, test, device)}
    (ctx.workdir / "summary.json").write_text(json.dumps(flat, indent=2, sort_keys=True))
    (ctx.workdir / "baseline.json").write_text(json.dumps(references["baseline"].to_dict()))
    (ctx.workdir / "table.txt").write_text(render_table(results) + "\n"
                                           + render_distance_table(distance)
                                           + detector_line(ctx, p.modes))
    ids = f"data {ctx.data_version[:12]}  ·  evaluate {ctx.fingerprint[:12]}"
    plot_distance(distance, ctx.workdir / "distance.png")
    plot_recalls(results, ctx.workdir / "recall.png", ids)
    plot_per_predicate(results, ctx.workdir / "per_predicate.png", ids=ids)
    return flat


def detector_line(ctx: StageContext, modes: list[str]) -> str:
    """SGDET's boxes in one line: the detect stage's mAP and box recall beside the prior."""
    if "sgdet" not in modes:
        return ""
    found = json.loads((ctx.input_path("detect") / "metrics.json").read_text())
    recall = next(k for k in found["detector"] if k.startswith("recall@"))
    return ("\nSGDET boxes (test): " + "; ".join(
        f"{who} mAP@0.5 {100 * m['mAP@0.5']:.2f}, {recall} {100 * m[recall]:.2f}"
        for who, m in (("detector", found["detector"]), ("class prior", found["prior"])))
        + "\n")


def probe_deltas(model, data, videos: list[str], device, batch_videos: int = 4) -> dict:
    """Change of test PREDCLS R@20 (with constraint) when the temporal path is perturbed:
    frames shuffled, OT off, LLM states of another video (``SceneLLM.forward``'s probes).
    Batches of several videos, so that swapped states come from a different video."""
    from scenellm.model.scenellm import PROBES
    from scenellm.stages.finetune import validate

    base = validate(model, data, videos, device, batch_videos)
    return {f"probe_{name}_delta_R@20": validate(model, data, videos, device, batch_videos,
                                                 probe=name) - base for name in PROBES}


def video_sums(scored: dict, frames: list[int]) -> dict[str, dict[str, list[float]]]:
    """Per predictor, the sum of per-frame R@K (with constraint) over each test video's
    frames: what a video bootstrap resamples (``scenellm.evaluation.bootstrap``)."""
    import numpy as np

    from scenellm.evaluation.mean_recall import KS

    edges = np.cumsum([0, *frames])
    out = {}
    for who, by_constraint in scored.items():
        recalls = by_constraint["with"].result_dict[by_constraint["with"].mode + "_recall"]
        out[who] = {f"R@{k}": [float(sum(recalls[k][a:b])) for a, b in
                               zip(edges[:-1], edges[1:], strict=True)] for k in KS}
    return out


def flat_metrics(results: dict) -> dict[str, float]:
    from scenellm.evaluation.mean_recall import KS

    flat = {}
    for who, modes in results.items():
        prefix = "" if who == "model" else f"{who}_"
        for mode, constraints in modes.items():
            for c, summary in constraints.items():
                for k in KS:
                    flat[f"{prefix}{mode}_{c}_R@{k}"] = summary[f"R@{k}"]
                    flat[f"{prefix}{mode}_{c}_mR@{k}"] = summary[f"mR@{k}"]
                    flat[f"{prefix}{mode}_{c}_mR@{k}_frame"] = summary[f"mR@{k}_frame"]
    return flat


def flat_distance(distance: dict) -> dict[str, float]:
    """``{who_}{mode}_with_{near|far}_R@K`` and the frames holding each bucket."""
    from scenellm.evaluation.mean_recall import KS

    flat = {}
    for who, modes in distance.items():
        prefix = "" if who == "model" else f"{who}_"
        for mode, buckets in modes.items():
            for bucket, summary in buckets.items():
                for k in KS:
                    flat[f"{prefix}{mode}_with_{bucket}_R@{k}"] = summary[f"R@{k}"]
                flat[f"{prefix}{mode}_with_{bucket}_frames"] = float(summary["frames"])
    return flat


def load_results(path: Path) -> dict:
    return json.loads((path / "metrics.json").read_text())
