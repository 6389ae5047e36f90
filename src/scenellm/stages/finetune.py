"""``finetune``: phases (b) and (c) of SceneLLM training (DESIGN §2 item 7).

(b) VQ-VAE and LLM frozen: train token projection, SIA (box MLP + GCN), OT scene words and
the predictor. (c) add the LLM adapters (LoRA, or all LLM weights for ``llm.mode=full``).

A recipe: :func:`build` (data, the training pairs' predicate prior that
``model.logit_adjust`` and ``finetune.balance`` need, counted only when one is on, model,
optimiser, resumed state), :func:`train_epoch`,
:func:`validate` (PREDCLS R@20 and mR@20 with constraint on held-out train videos),
:func:`save` (the kept epoch as a self-contained model directory). ``finetune.select``
names the kept epoch: best validation R@20, best mean of R@20 and mR@20 (R@20 settles
within a few epochs on noise of ±0.5 points while rare predicates are still being learnt),
or the last. AdamW with its own learning rate per group (heads ``lr``, LoRA ``lora_lr``,
every LLM weight ``full_lr``), linear warm-up then cosine decay over the step budget,
gradient clipping, early stopping after ``patience`` epochs without a better selection
score, a checkpoint every epoch (resumed after a kill).
A non-finite loss or gradient stops the stage with one line and no success record.

With ``finetune.nproc`` > 1 the stage launches that many ranks with ``torchrun``
(:mod:`scenellm.stages.launch`); each rank trains a DistributedDataParallel replica on its
share of every global batch of ``batch_videos`` videos (:meth:`World.shard`), rank 0
validates and writes. Checkpoints hold the unwrapped model, so they resume with any number
of processes. ``nproc`` is part of the fingerprint: the per-rank loss means averaged by DDP
equal the one-process batch loss only when every rank holds as many relations, so results
agree within a tolerance (tests/stages/test_finetune_ddp.py), not to the bit.
"""

from __future__ import annotations

import json
import math
import random
import sys
import warnings
from dataclasses import dataclass
from typing import Any

from scenellm.evaluation import SELECTION_METRIC
from scenellm.faults import killpoint
from scenellm.stages.base import StageContext, StageSpec

SPEC = StageSpec(
    name="finetune",
    sections=("model", "ot", "llm", "lora", "finetune"),
    upstream=("prepare", "features", "vqvae"),
    resumable=True,
)
VAL_METRIC = SELECTION_METRIC
VAL_MEAN_RECALL = "val_predcls_mR@20"


def selection_score(select: str, record: dict[str, float], epoch: int) -> float:
    """What ``finetune.select`` maximises over epochs: validation R@20, the mean of R@20
    and mR@20, or the epoch itself (the last one is kept)."""
    if select == "last":
        return float(epoch)
    if select == "R@20+mR@20":
        return (record[VAL_METRIC] + record[VAL_MEAN_RECALL]) / 2
    return record[VAL_METRIC]


@dataclass
class Recipe:
    """Everything one fine-tuning run holds."""

    data: Any
    world: Any
    train: list[str]
    val: list[str]
    device: Any
    model: Any
    replica: Any  # the model under DDP in a world of several ranks, else the model
    pos_weight: dict  # finetune.balance's positive weights (empty when β is 0)
    adapters: list
    groups: list[dict]
    optimizer: Any
    scheduler: Any
    total_steps: int
    checkpoint: Any
    state: dict[str, Any]


def model_config(ctx: StageContext, feature_dim: int,
                 predicate_prior: list[float] | None = None):
    from scenellm.model.scenellm import SceneLLMConfig

    p = ctx.params
    return SceneLLMConfig(
        feature_dim=feature_dim, tokens=p.model.tokens, temporal=p.model.temporal,
        context=p.model.context, language=p.model.language, ot_source=p.ot.source,
        d_model=p.model.d_model, sia_groups=p.model.sia_groups,
        decoder_layers=p.model.decoder_layers, gate_alpha=p.model.gate_alpha,
        num_scene_tokens=p.ot.num_scene_tokens, ot_epsilon=p.ot.epsilon,
        ot_max_iter=p.ot.max_iter, ot_tol=p.ot.tol, llm_path=p.llm.path, llm_mode=p.llm.mode,
        llm_prompt=p.llm.prompt, llm_quantization=p.llm.quantization,
        llm_gradient_checkpointing=p.llm.gradient_checkpointing, lora_rank=p.lora.rank,
        lora_alpha=p.lora.alpha, lora_dropout=p.lora.dropout,
        lora_target_modules=p.lora.target_modules, predicate_prior=predicate_prior,
        **p.model.model_dump(include={"spatial", "spatial_options", "head", "head_options",
                                      "fusion", "fusion_options", "pair_window",
                                      "union", "logit_adjust"}))


def build(ctx: StageContext) -> Recipe:
    import torch

    from scenellm.device import select_device
    from scenellm.distributed import join, wrap
    from scenellm.features.stream import holdout_split
    from scenellm.io import recover_dir
    from scenellm.model.losses import positive_weights, predicate_prior
    from scenellm.model.scene_graph_data import SceneGraphData
    from scenellm.model.scenellm import SceneLLM
    from scenellm.model.vqvae import VQVAE
    from scenellm.stages.checkpoint import EpochCheckpoint
    from scenellm.stages.launch import adopt_checkpoint

    p = ctx.params.finetune
    device = select_device(p.device)
    world = join(device.type)
    if device.type == "cuda":  # a quantised LLM is loaded straight onto the current device
        if world.active:  # one GPU per rank
            device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    random.seed(p.seed)
    torch.manual_seed(p.seed)
    data = SceneGraphData(ctx.input_path("features"), ctx.input_path("prepare"))
    train, val = holdout_split(data.videos("train"), p.val_fraction, salt="finetune")
    vqvae, mean, std = VQVAE.from_pretrained(ctx.input_path("vqvae"))
    prior = (predicate_prior(data.batch(train[i:i + 16]) for i in range(0, len(train), 16))
             if p.balance or ctx.params.model.logit_adjust else None)  # a pass over the data
    model = SceneLLM(model_config(ctx, data.store.load_manifest()["feature_dim"], prior),
                     vqvae, mean, std).to(device)
    # a checkpoint restored below brings the same statistics back
    model.fit_geometry(data.batch(train[i:i + 16]) for i in range(0, len(train), 16))
    adapters = model.adapter_parameters()
    adapter_ids = {id(q) for q in adapters}
    heads = [q for n, q in model.named_parameters()
             if id(q) not in adapter_ids and not n.startswith(("vqvae.", "llm.llm."))]
    for q in model.llm.llm.parameters() if model.config.llm_mode != "none" else []:
        q.requires_grad_(False)
    groups = [{"params": heads, "lr": p.lr}]
    if adapters:
        lr = p.full_lr if model.config.llm_mode == "full" else p.lora_lr
        groups.append({"params": adapters, "lr": lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=p.weight_decay)
    total_steps = step_budget(p, len(train))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, p.warmup_steps, total_steps))
    checkpoint = EpochCheckpoint(ctx.workdir / "checkpoint")
    if world.is_main:  # a killed run with another nproc left one: continue it
        adopted = adopt_checkpoint(ctx, "finetune.nproc")
        if adopted:
            print(f"finetune: resuming the checkpoint of the run with nproc={adopted}",
                  file=sys.stderr)
    world.broadcast(None)  # the others read the checkpoint once it is there
    recover_dir(ctx.workdir / "model")  # a best-model write cut by a kill
    state = checkpoint.restore(model, optimizer) or {
        "epoch": 0, "step": 0, "best": -1.0, "best_epoch": -1, "stale": 0, "history": []}
    if "scheduler" in state:  # after the optimizer: its groups already hold the current lr
        scheduler.load_state_dict(state["scheduler"])
    if "torch_rng" in state:  # dropout draws continue exactly where the killed run stopped
        torch.set_rng_state(state["torch_rng"])
    train_phase(model, adapters, p, state["epoch"])
    pos_weight = ({k: w.to(device) for k, w in positive_weights(prior, p.balance).items()}
                  if p.balance else {})
    return Recipe(data, world, train, val, device, model, wrap(model, world, device),
                  pos_weight, adapters, groups, optimizer, scheduler, total_steps, checkpoint,
                  state)


def train_phase(model, adapters: list, p, epoch: int) -> bool:
    """Phase (c) trains the adapters too; True when this epoch changed what is trained."""
    phase_c = epoch >= p.phase_b_epochs
    changed = any(q.requires_grad != phase_c for q in adapters)
    for q in adapters:
        q.requires_grad_(phase_c)
    return changed


def step_budget(p, train_videos: int) -> int:
    """Optimiser steps of the whole run: every epoch's batches, capped by ``max_steps``."""
    steps = math.ceil(train_videos / p.batch_videos) * (p.phase_b_epochs + p.phase_c_epochs)
    return min(steps, p.max_steps) if p.max_steps else steps


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def train_epoch(r: Recipe, p) -> dict[str, float]:
    """One pass over the train videos in a seeded order; mean loss parts of the epoch."""
    import torch

    from scenellm.device import autocast_context
    from scenellm.distributed import wrap
    from scenellm.model.losses import sgg_loss
    from scenellm.model.sinkhorn import NonFiniteInput

    epoch = r.state["epoch"]
    if train_phase(r.model, r.adapters, p, epoch) and r.world.active:
        r.replica = wrap(r.model, r.world, r.device)  # DDP hooks the parameters it trains
    order = list(r.train)
    random.Random(p.seed * 7919 + epoch).shuffle(order)
    r.model.train()
    losses: dict[str, float] = {}
    steps = unconverged = 0
    for start in range(0, len(order), p.batch_videos):
        if r.state["step"] >= r.total_steps:  # the step budget ends the run mid-epoch
            break
        killpoint("finetune.step")
        videos = r.world.shard(order[start:start + p.batch_videos])
        batch = r.data.batch(videos).to(r.device)
        try:
            with autocast_context(r.device, p.mixed_precision):
                out = r.replica(batch, mode="predcls")
                loss, parts = sgg_loss(out, batch.targets(), pos_weight=r.pos_weight)
        except NonFiniteInput:  # activations overflowed inside OT
            parts = {"total": math.inf}
        # every rank stops together, before a backward its peers would wait for
        check_step(r, p, loss=math.inf if r.world.any(not math.isfinite(parts["total"]))
                   else parts["total"])
        r.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_([q for g in r.groups for q in g["params"]],
                                              p.grad_clip)
        check_step(r, p, gradient_norm=float(norm))
        r.optimizer.step()
        check_step(r, p, weights=float(all_finite(r.groups)))
        r.scheduler.step()
        r.state["step"] += 1
        steps += 1
        unconverged += r.model.diagnostics.get("ot_unconverged", 0.0)
        for k, v in parts.items():
            losses[k] = losses.get(k, 0.0) + v
    record = {f"train_loss_{k}": v / max(1, steps) for k, v in losses.items()}
    record["ot_unconverged"] = unconverged / max(1, steps)
    record = r.world.mean(record)  # every rank logs and decides on the same figures
    record["lr"] = r.scheduler.get_last_lr()[0]
    return record


def check_step(r: Recipe, p, **values: float) -> None:
    """Stop at the first non-finite loss, gradient norm or weights (``weights`` is 1.0 when
    every trained weight is finite): a finite step can still overflow the weights."""
    from scenellm.errors import TrainingDiverged

    for name, value in values.items():
        if not math.isfinite(value) or (name == "weights" and value != 1.0):
            raise TrainingDiverged(
                f"finetune: the {name.replace('_', ' ')} became non-finite at step "
                f"{r.state['step']} (epoch {r.state['epoch']}); lower finetune.lr (now "
                f"{p.lr:g}) or the adapters' lr, or turn finetune.mixed_precision off")


def all_finite(groups: list[dict]) -> bool:
    """Every trained weight finite (one host sync)."""
    import torch

    return bool(torch.stack([q.isfinite().all() for g in groups for q in g["params"]]).all())


def validate(model, data, videos, device, batch_videos: int, mode: str = "predcls",
             probe: str | None = None, mean_recall: bool = False):
    """Mean R@20 with constraint over ``videos`` (STTran semantics), optionally under one
    of the model's probes (``SceneLLM.forward``); with ``mean_recall`` the pair (R@20,
    mR@20), mR as TEMPURA's per-predicate mean over the videos' hits."""
    import torch

    from scenellm.evaluation.sttran_adapters import ag_evaluator, sttran_gt, sttran_predictions

    evaluator = ag_evaluator(mode, constraint="with")
    model.eval()
    with torch.no_grad():
        for start in range(0, len(videos), batch_videos):
            batch = data.batch(videos[start:start + batch_videos]).to(device)
            out = model(batch, mode=mode, **({"probe": probe} if probe else {}))
            for b, vid in enumerate(batch.video_ids):
                gt = sttran_gt(data.store.read_shard(vid), data.object_labels(vid))
                evaluator.evaluate_scene_graph(gt, sttran_predictions(batch, out, b))
    summary = evaluator.summary()
    if mean_recall:
        return float(summary["R@20"]), float(summary["mR@20"])
    return float(summary["R@20"])


def end_epoch(ctx: StageContext, r: Recipe, record: dict[str, float]) -> None:
    """Keep the best epoch's model, checkpoint, then log (the logger may prune)."""
    import torch

    from scenellm.io import staged_dir
    from scenellm.model.checkpoint import save_finetuned
    from scenellm.stages.divergence import check_epoch

    epoch = r.state["epoch"]
    p = ctx.params.finetune
    check_epoch("finetune", epoch, record, r.state["history"] or [record],
                f"lower finetune.lr (now {p.lr:g}) or finetune.lora_lr (now {p.lora_lr:g})",
                watch="train_loss_total")
    if record["ot_unconverged"] > 0 and r.world.is_main:
        warnings.warn(f"finetune: Sinkhorn stopped unconverged in "
                      f"{100 * record['ot_unconverged']:.1f} % of epoch {epoch}'s OT problems; "
                      "raise ot.max_iter or ot.epsilon", RuntimeWarning, stacklevel=2)
    r.state["history"].append(record)
    r.state["stale"] += 1
    score = selection_score(p.select, record, epoch)
    if score > r.state["best"]:
        r.state["best"], r.state["best_epoch"], r.state["stale"] = score, epoch, 0
        if r.world.is_main:
            with staged_dir(ctx.workdir / "model") as tmp:
                save_finetuned(r.model, tmp, ctx.input_path("vqvae"))
                killpoint("finetune.model_staged")
    r.state["epoch"] += 1
    r.state["torch_rng"] = torch.get_rng_state()
    r.state["scheduler"] = r.scheduler.state_dict()
    if r.world.is_main:
        r.checkpoint.save(r.model, r.optimizer, r.state)
        ctx.log_metrics(record, epoch)  # may raise to prune (studies)


def save(ctx: StageContext, r: Recipe) -> dict[str, Any]:
    """History and summary (rank 0 writes); the best model is already in ``model/``."""
    if r.world.is_main:
        (ctx.workdir / "history.json").write_text(json.dumps(r.state["history"], indent=1))
        killpoint("finetune.history_written")
        r.checkpoint.clear()
    counts = r.model.llm.trainable_parameters()
    p = ctx.params.finetune
    kept = r.state["history"][r.state["best_epoch"]] if r.state["history"] else {}
    return {"best_" + VAL_METRIC: kept.get(VAL_METRIC, r.state["best"]),
            **({"best_" + VAL_MEAN_RECALL: kept[VAL_MEAN_RECALL]}
               if VAL_MEAN_RECALL in kept else {}),
            "epochs": r.state["epoch"],
            "best_epoch": r.state["best_epoch"],
            "best_phase_c": float(r.state["best_epoch"] >= p.phase_b_epochs),
            "steps": r.state["step"],
            "stopped_early": float(bool(p.patience) and r.state["stale"] >= p.patience),
            "train_videos": len(r.train), "val_videos": len(r.val), "nproc": r.world.size,
            "llm_trainable_params": counts.trainable, "llm_total_params": counts.total}


def epochs(p) -> int:
    return p.phase_b_epochs + p.phase_c_epochs


def finished(r: Recipe, p) -> bool:
    """All epochs done, the step budget spent, or ``patience`` epochs without a better one."""
    return (r.state["epoch"] >= epochs(p) or r.state["step"] >= r.total_steps
            or bool(p.patience and r.state["stale"] >= p.patience))


def run(ctx: StageContext) -> dict:
    """One process, or ``finetune.nproc`` ranks launched with torchrun."""
    from scenellm.distributed import world_from_env
    from scenellm.stages.launch import launch

    nproc = ctx.params.finetune.nproc
    if nproc > 1 and not world_from_env().active:
        return launch(ctx, nproc)
    return train(ctx)


def train(ctx: StageContext) -> dict:
    """The training loop of one rank (of one process when not launched)."""
    import io

    from scenellm.progress import figures, progress

    p = ctx.params.finetune
    r = build(ctx)
    stream = None if r.world.is_main else io.StringIO()  # one bar: rank 0's
    with progress("finetune", epochs(p), "epochs", completed=r.state["epoch"],
                  stream=stream) as bar:
        while not finished(r, p):
            record = train_epoch(r, p)
            recall, mean_recall = r.world.broadcast(  # rank 0 validates, every rank decides
                validate(r.model, r.data, r.val, r.device, p.batch_videos, mean_recall=True)
                if r.world.is_main else None)
            record[VAL_METRIC], record[VAL_MEAN_RECALL] = recall, mean_recall
            record["phase_c"] = float(r.state["epoch"] >= p.phase_b_epochs)
            end_epoch(ctx, r, record)
            bar.update(r.state["epoch"], info=figures(record, ("train_loss_total", VAL_METRIC)))
    return save(ctx, r)
