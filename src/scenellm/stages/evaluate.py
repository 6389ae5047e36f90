"""``evaluate``: the fine-tuned SceneLLM and the frequency baseline on the test split, in
PREDCLS and SGCLS, under the with / semi / no constraints (STTran's evaluator semantics).

Writes ``metrics.json`` (R@10/20/50/100, both mR@K definitions, per-predicate recall),
``summary.json`` (flat numbers for ``dvc metrics``), ``table.txt`` and two PNG plots.
"""

from __future__ import annotations

import json
from pathlib import Path

from scenellm.evaluation import PRIMARY_METRIC
from scenellm.stages.base import StageContext, StageSpec

SPEC = StageSpec(
    name="evaluate",
    sections=("evaluate",),
    upstream=("prepare", "features", "finetune"),
)
PRIMARY = PRIMARY_METRIC


def evaluators(mode: str, p) -> dict:
    from scenellm.evaluation.sttran_adapters import CONSTRAINTS, ag_evaluator

    return {c: ag_evaluator(mode, c, p.iou_threshold, p.semi_threshold) for c in CONSTRAINTS}


def fit_baseline(data, videos: list[str]):
    """Frequency baseline on the train split's (person, object class) pairs."""
    import numpy as np

    from scenellm.evaluation.baseline import FrequencyBaseline

    classes, att, spa, con = [], [], [], []
    for vid in videos:
        batch = data.batch([vid])
        classes.append(batch.labels[batch.pair_idx[:, 1]].numpy())
        att.append(batch.attention.numpy())
        spa.append(batch.spatial.numpy())
        con.append(batch.contacting.numpy())
    return FrequencyBaseline().fit(np.concatenate(classes), np.concatenate(att),
                                   np.concatenate(spa), np.concatenate(con))


def baseline_outputs(baseline, out: dict, batch) -> dict:
    """Baseline predicate scores for the pairs of a batch, given the object labels in use
    (ground truth in PREDCLS, the model's predictions in SGCLS, as in Motifs)."""
    import torch

    pred = baseline.predict(out["labels"][batch.pair_idx[:, 1]].cpu().numpy())
    to = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    eps = 1e-6
    return {**out, "attention_logits": to(pred["attention"]),
            "spatial_logits": torch.logit(to(pred["spatial"]).clamp(eps, 1 - eps)),
            "contacting_logits": torch.logit(to(pred["contacting"]).clamp(eps, 1 - eps))}


def run(ctx: StageContext) -> dict:
    import torch
    from rich.progress import Progress

    from scenellm.device import select_device
    from scenellm.evaluation.report import plot_per_predicate, plot_recalls, render_table
    from scenellm.evaluation.sttran_adapters import CONSTRAINTS, sttran_gt, sttran_predictions
    from scenellm.model.checkpoint import load_finetuned
    from scenellm.model.scene_graph_data import SceneGraphData

    p = ctx.params.evaluate
    device = select_device("auto")
    data = SceneGraphData(ctx.input_path("features"), ctx.input_path("prepare"))
    model = load_finetuned(ctx.input_path("finetune") / "model", device=str(device))
    baseline = fit_baseline(data, data.videos("train"))
    test = data.videos("test")
    results = {"model": {}, "baseline": {}}
    with Progress(transient=True) as bar, torch.no_grad():
        for mode in p.modes:
            model_eval, base_eval = evaluators(mode, p), evaluators(mode, p)
            task = bar.add_task(f"evaluate {mode}", total=len(test))
            for start in range(0, len(test), 4):
                batch = data.batch(test[start:start + 4]).to(device)
                out = model(batch, mode=mode)
                base = baseline_outputs(baseline, out, batch)
                for b, vid in enumerate(batch.video_ids):
                    gt = sttran_gt(data.store.read_shard(vid), data.object_labels(vid))
                    pred = sttran_predictions(batch, out, b)
                    bpred = sttran_predictions(batch, base, b)
                    for c in CONSTRAINTS:
                        model_eval[c].evaluate_scene_graph(gt, pred)
                        base_eval[c].evaluate_scene_graph(gt, bpred)
                    bar.advance(task)
            results["model"][mode] = {c: model_eval[c].summary() for c in CONSTRAINTS}
            results["baseline"][mode] = {c: base_eval[c].summary() for c in CONSTRAINTS}
    (ctx.workdir / "metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    flat = flat_metrics(results)
    (ctx.workdir / "summary.json").write_text(json.dumps(flat, indent=2, sort_keys=True))
    (ctx.workdir / "baseline.json").write_text(json.dumps(baseline.to_dict()))
    (ctx.workdir / "table.txt").write_text(render_table(results))
    plot_recalls(results, ctx.workdir / "recall.png")
    plot_per_predicate(results, ctx.workdir / "per_predicate.png")
    return flat


def flat_metrics(results: dict) -> dict[str, float]:
    from scenellm.evaluation.mean_recall import KS

    flat = {}
    for who, modes in results.items():
        prefix = "" if who == "model" else "baseline_"
        for mode, constraints in modes.items():
            for c, summary in constraints.items():
                for k in KS:
                    flat[f"{prefix}{mode}_{c}_R@{k}"] = summary[f"R@{k}"]
                    flat[f"{prefix}{mode}_{c}_mR@{k}"] = summary[f"mR@{k}"]
                    flat[f"{prefix}{mode}_{c}_mR@{k}_frame"] = summary[f"mR@{k}_frame"]
    return flat


def load_results(path: Path) -> dict:
    return json.loads((path / "metrics.json").read_text())
