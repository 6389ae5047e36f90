"""``vqvae``: pretrain the VQ-VAE alone on the train split's object features (phase (a)).

A recipe: :func:`build` (normaliser, model, optimiser, resumed state), :func:`train_epoch`,
:func:`validate` (held-out reconstruction), :func:`save`. Early-stops on held-out
reconstruction, checkpoints every epoch (resumed after a kill) and saves the best model
(``model.safetensors`` + ``config.json``), the feature normaliser, the code-usage histogram
and its plot.

With ``vqvae.nproc`` > 1 the stage launches that many ranks with ``torchrun``
(:mod:`scenellm.stages.launch`): each takes every ``nproc``-th row of each batch, gradients
are averaged by DistributedDataParallel and the codebook's EMA counts and sums are summed
over the ranks, so its update is the one-process update of the whole batch; rank 0
validates and writes.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenellm.faults import killpoint
from scenellm.stages.base import StageContext, StageSpec

SPEC = StageSpec(
    name="vqvae",
    sections=("vqvae",),
    upstream=("features",),
    resumable=True,
)
BEST = "best.safetensors"


@dataclass
class Recipe:
    """Everything one training run holds."""

    store: Any
    world: Any
    train: list[str]
    held: list[str]
    mean: Any
    std: Any
    model: Any
    replica: Any  # the model under DDP in a world of several ranks, else the model
    optimizer: Any
    generator: Any
    checkpoint: Any
    state: dict[str, Any]


def feature_moments(store, videos: list[str]):
    """Per-dimension mean (F,) and std (F,) of the object features of ``videos``."""
    import torch

    from scenellm.features.stream import feature_batches

    total, sq, n = None, None, 0
    for batch in feature_batches(store, videos, 4096, 0, 0, shuffle=False):
        batch = batch.double()
        total = batch.sum(0) if total is None else total + batch.sum(0)
        sq = (batch ** 2).sum(0) if sq is None else sq + (batch ** 2).sum(0)
        n += len(batch)
    mean = total / n
    std = (sq / n - mean ** 2).clamp_min(1e-12).sqrt()
    return mean.float(), torch.clamp(std.float(), min=1e-3)


def build(ctx: StageContext) -> Recipe:
    import torch

    from scenellm.distributed import join, wrap
    from scenellm.features.store import FeatureStore
    from scenellm.features.stream import holdout_split, split_videos
    from scenellm.model.vqvae import VQVAE
    from scenellm.stages.checkpoint import EpochCheckpoint
    from scenellm.stages.launch import adopt_checkpoint

    p = ctx.params.vqvae
    world = join("cpu")
    store = FeatureStore(ctx.input_path("features"))
    train, held = holdout_split(split_videos(store, "train"), p.holdout, salt="vqvae")
    mean, std = feature_moments(store, train)
    torch.manual_seed(p.seed)
    model = VQVAE(in_dim=store.load_manifest()["feature_dim"], code_dim=p.code_dim,
                  codebook_size=p.codebook_size, hidden_dim=p.hidden_dim, beta=p.beta,
                  decay=p.decay, dead_threshold=p.dead_threshold, kmeans_init=p.kmeans_init)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr)
    checkpoint = EpochCheckpoint(ctx.workdir / "checkpoint")
    if world.is_main:  # a killed run with another nproc left one: continue it
        adopt_checkpoint(ctx, "vqvae.nproc")
    world.broadcast(None)  # the others read the checkpoint once it is there
    state = checkpoint.restore(model, optimizer) or {"epoch": 0, "best": float("inf"),
                                                     "bad": 0, "history": []}
    generator = torch.Generator().manual_seed(p.seed)
    if "generator" in state:
        generator.set_state(state["generator"])
    elif p.kmeans_init:
        init_codebook(model, store, train, mean, std, generator)
    return Recipe(store, world, train, held, mean, std, model,
                  wrap(model, world, torch.device("cpu"), unused=False), optimizer, generator,
                  checkpoint, state)


def init_codebook(model, store, videos: list[str], mean, std, generator,
                  rows_per_code: int = 20) -> None:
    """k-means++ codebook from the untrained encoder's outputs of up to K · rows_per_code
    train features, so the seeds are drawn from many more distinct vectors than K (a first
    batch smaller than K would leave duplicate codes)."""
    import torch

    from scenellm.features.stream import feature_batches

    size = model.codebook.codebook_size
    rows = []
    with torch.no_grad():
        for batch in feature_batches(store, videos, 4096, 0, 0, shuffle=False):
            rows.append(model.encoder((batch - mean) / std))
            if sum(len(r) for r in rows) >= size * rows_per_code:
                break
    model.codebook.init_from_kmeans(torch.cat(rows)[: size * rows_per_code], generator)


def train_epoch(r: Recipe, p) -> dict[str, float]:
    """One pass over the train videos' features; the epoch's training record."""
    import torch

    from scenellm.distributed import all_sum
    from scenellm.features.stream import feature_batches
    from scenellm.model.codebook import codes_in_use, perplexity_from_counts

    r.model.train()
    sums = {"recon": 0.0, "commit": 0.0, "dead": 0, "n": 0}
    counts = torch.zeros(p.codebook_size)
    for batch in feature_batches(r.store, r.train, p.batch_size, p.seed, r.state["epoch"]):
        batch = batch[r.world.shard(list(range(len(batch))))]  # (B / nproc, F)
        out = r.replica((batch - r.mean) / r.std, generator=r.generator)
        r.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        r.optimizer.step()
        sums["recon"] += float(out.recon_loss.detach()) * len(batch)
        sums["commit"] += float(out.commit_loss.detach()) * len(batch)
        sums["dead"] += out.dead_restarted
        sums["n"] += len(batch)
        counts += torch.bincount(out.indices.detach(), minlength=p.codebook_size).float()
    all_sum(counts)  # the whole batch's code use; restarts are decided jointly
    sums.update(r.world.mean({k: sums[k] for k in ("recon", "commit", "n")}))  # ratios: global
    return {"recon_mse": sums["recon"] / sums["n"], "commit_loss": sums["commit"] / sums["n"],
            "perplexity": float(perplexity_from_counts(counts)),
            "codes_in_use": codes_in_use(counts) / p.codebook_size,
            "dead_restarted": sums["dead"]}


def validate(model, store, videos, mean, std, batch_size):
    """(mean reconstruction MSE, code counts (K,), codes (N,)) of ``videos``' features, in
    a fixed order, no updates."""
    import torch

    from scenellm.features.stream import feature_batches

    model.eval()
    counts = torch.zeros(model.codebook.embed.shape[0])
    err, n, codes = 0.0, 0, []
    with torch.no_grad():
        for batch in feature_batches(store, videos, batch_size, 0, 0, shuffle=False):
            out = model((batch - mean) / std)
            err += float(out.recon_loss) * len(batch)
            n += len(batch)
            counts += torch.bincount(out.indices, minlength=len(counts)).float()
            codes.append(out.indices)
    return err / max(n, 1), counts, torch.cat(codes) if codes else torch.zeros(0, dtype=int)


def holdout_record(r: Recipe, p) -> dict[str, float]:
    """Codebook health on a full pass over the held-out features: reconstruction,
    perplexity, share of codes in use and churn (share of rows whose code changed since the
    previous epoch's pass; 1 at the first epoch)."""
    import torch

    from scenellm.model.codebook import codes_in_use, perplexity_from_counts

    mse, counts, codes = validate(r.model, r.store, r.held, r.mean, r.std, p.batch_size)
    previous = r.state.get("holdout_codes")
    churn = (1.0 if previous is None or len(previous) != len(codes)
             else float((torch.as_tensor(previous) != codes).float().mean()))
    r.state["holdout_codes"] = codes.tolist()
    return {"holdout_recon_mse": mse, "holdout_perplexity": float(perplexity_from_counts(counts)),
            "holdout_codes_in_use": codes_in_use(counts) / p.codebook_size,
            "holdout_code_churn": churn}


def end_epoch(ctx: StageContext, r: Recipe, record: dict[str, float]) -> None:
    """Log the epoch, keep the best weights, checkpoint (a kill resumes after this epoch)."""
    from safetensors.torch import save as to_bytes

    from scenellm.io import atomic_write_bytes
    from scenellm.stages.divergence import EXPLODED, check_epoch

    p = ctx.params.vqvae
    check_epoch("vqvae", r.state["epoch"], record, r.state["history"] or [record],
                f"lower vqvae.lr (now {p.lr:g})", watch="holdout_recon_mse", limit=EXPLODED)
    if r.world.is_main:
        ctx.log_metrics(record, r.state["epoch"])
    r.state["history"].append(record)
    if record["holdout_recon_mse"] < r.state["best"] - 1e-6:
        r.state["best"], r.state["bad"] = record["holdout_recon_mse"], 0
        if r.world.is_main:
            atomic_write_bytes(ctx.workdir / BEST, to_bytes(
                {k: v.contiguous() for k, v in r.model.state_dict().items()}))
            killpoint("vqvae.best_saved")
    else:
        r.state["bad"] += 1
    r.state["epoch"] += 1
    r.state["generator"] = r.generator.get_state()
    if r.world.is_main:
        r.checkpoint.save(r.model, r.optimizer, r.state)


def save(ctx: StageContext, r: Recipe) -> dict[str, Any]:
    """The best epoch's model, normaliser, code usage and history; returns the summary.

    Ordered so that a kill anywhere leaves a resumable folder: ``best.safetensors`` stays
    until every output is written, and the checkpoint (which says training is over) goes
    last; a re-run that finds the checkpoint but no ``best.safetensors`` starts from the
    complete ``model.safetensors`` written before it was removed.
    """
    import torch
    from safetensors.torch import load_file

    from scenellm.model.codebook import codes_in_use, perplexity

    p = ctx.params.vqvae
    best = ctx.workdir / BEST
    r.model.load_state_dict(load_file(best if best.exists()
                                      else ctx.workdir / "model.safetensors"))
    r.model.save_pretrained(ctx.workdir, r.mean, r.std)
    killpoint("vqvae.model_saved")
    train_mse, usage, _ = validate(r.model, r.store, r.train, r.mean, r.std, p.batch_size)
    held_mse, _, _ = validate(r.model, r.store, r.held, r.mean, r.std, p.batch_size)
    idx = torch.repeat_interleave(torch.arange(p.codebook_size), usage.long())
    summary = {"train_recon_mse": train_mse, "holdout_recon_mse": held_mse,
               "perplexity": float(perplexity(idx, p.codebook_size)),
               "codes_in_use": codes_in_use(usage), "codebook_size": p.codebook_size,
               "codes_in_use_share": codes_in_use(usage) / p.codebook_size,
               "epochs": r.state["epoch"]}
    (ctx.workdir / "code_usage.json").write_text(json.dumps(usage.long().tolist()))
    (ctx.workdir / "history.json").write_text(json.dumps(r.state["history"], indent=1))
    plot_code_usage(usage, summary, ctx.workdir / "code_usage.png")
    best.unlink(missing_ok=True)
    killpoint("vqvae.best_removed")
    r.checkpoint.clear()
    return summary


def run(ctx: StageContext) -> dict:
    """One process, or ``vqvae.nproc`` ranks launched with torchrun."""
    from scenellm.distributed import world_from_env
    from scenellm.stages.launch import launch

    nproc = ctx.params.vqvae.nproc
    if nproc > 1 and not world_from_env().active:
        return launch(ctx, nproc)
    return train(ctx)


def train(ctx: StageContext) -> dict:
    """The training loop of one rank (of one process when not launched)."""
    from scenellm.memory import fixed_mmap_threshold
    from scenellm.progress import figures, progress

    fixed_mmap_threshold()  # shards of every size read each epoch: RSS flat as data grows

    p = ctx.params.vqvae
    r = build(ctx)
    stream = None if r.world.is_main else io.StringIO()  # one bar: rank 0's
    with progress("vqvae", p.epochs, "epochs", completed=r.state["epoch"],
                  stream=stream) as bar:
        while r.state["epoch"] < p.epochs and r.state["bad"] < p.patience:
            record = train_epoch(r, p)
            record.update(r.world.broadcast(holdout_record(r, p) if r.world.is_main else None))
            end_epoch(ctx, r, record)
            bar.update(r.state["epoch"], info=figures(record, ("recon_mse", "holdout_recon_mse")))
    return save(ctx, r) if r.world.is_main else {}


def plot_code_usage(usage, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = usage.numpy()
    order = counts.argsort()[::-1]
    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    ax.bar(range(len(counts)), counts[order], width=1.0, color="#3b6ea8")
    ax.set_xlabel("code (sorted by use)")
    ax.set_ylabel("train features")
    ax.set_title(f"VQ-VAE code usage: K={summary['codebook_size']}, "
                 f"in use {summary['codes_in_use']}, perplexity {summary['perplexity']:.1f}")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
