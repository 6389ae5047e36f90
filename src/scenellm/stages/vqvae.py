"""``vqvae``: pretrain the VQ-VAE alone on the train split's object features (phase (a)).

Streams features from the feature store, trains with AdamW, early-stops on held-out
reconstruction, checkpoints every epoch (resumed after a kill) and saves the best model
(``model.safetensors`` + ``config.json``), the feature normaliser, the code-usage
histogram and its plot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from scenellm.stages.base import StageContext, StageSpec

SPEC = StageSpec(
    name="vqvae",
    sections=("vqvae",),
    upstream=("features",),
    code=("model/vqvae.py", "model/codebook.py", "stages/vqvae.py",
          "stages/feature_stream.py", "stages/checkpoint.py"),
)


def load_trained(path: Path):
    """(VQVAE in eval mode, mean (F,), std (F,)) from a vqvae stage output."""
    from safetensors.torch import load_file

    from scenellm.model.vqvae import VQVAE

    model = VQVAE.from_config(json.loads((path / "config.json").read_text()))
    model.load_state_dict(load_file(path / "model.safetensors"))
    norm = load_file(path / "normalizer.safetensors")
    return model.eval(), norm["mean"], norm["std"]


def feature_moments(store, videos: list[str]):
    import torch

    from scenellm.stages.feature_stream import feature_batches

    total, sq, n = None, None, 0
    for batch in feature_batches(store, videos, 4096, 0, 0, shuffle=False):
        batch = batch.double()
        total = batch.sum(0) if total is None else total + batch.sum(0)
        sq = (batch ** 2).sum(0) if sq is None else sq + (batch ** 2).sum(0)
        n += len(batch)
    mean = total / n
    std = (sq / n - mean ** 2).clamp_min(1e-12).sqrt()
    return mean.float(), torch.clamp(std.float(), min=1e-3)


def evaluate(model, store, videos, mean, std, batch_size):
    import torch

    from scenellm.stages.feature_stream import feature_batches

    model.eval()
    counts = torch.zeros(model.codebook.embed.shape[0])
    err, n = 0.0, 0
    with torch.no_grad():
        for batch in feature_batches(store, videos, batch_size, 0, 0, shuffle=False):
            out = model((batch - mean) / std)
            err += float(out.recon_loss) * len(batch)
            n += len(batch)
            counts += torch.bincount(out.indices, minlength=len(counts)).float()
    return err / max(n, 1), counts


def run(ctx: StageContext) -> dict:
    import torch
    from rich.progress import Progress
    from safetensors.torch import save_file

    from scenellm.features.store import FeatureStore
    from scenellm.model.codebook import codes_in_use, perplexity
    from scenellm.model.vqvae import VQVAE
    from scenellm.stages.checkpoint import EpochCheckpoint
    from scenellm.stages.feature_stream import feature_batches, holdout_split, split_videos

    p = ctx.params.vqvae
    store = FeatureStore(ctx.input_path("features"))
    train, held = holdout_split(split_videos(store, "train"), p.holdout, salt="vqvae")
    mean, std = feature_moments(store, train)
    torch.manual_seed(p.seed)
    model = VQVAE(in_dim=store.load_manifest()["feature_dim"], code_dim=p.code_dim,
                  codebook_size=p.codebook_size, hidden_dim=p.hidden_dim, beta=p.beta,
                  decay=p.decay, dead_threshold=p.dead_threshold, kmeans_init=p.kmeans_init)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr)
    ckpt = EpochCheckpoint(ctx.workdir / "checkpoint")
    state = ckpt.restore(model, optimizer) or {"epoch": 0, "best": float("inf"), "bad": 0,
                                               "history": []}
    gen = torch.Generator().manual_seed(p.seed)
    if "generator" in state:
        gen.set_state(state["generator"])
    with Progress(transient=True) as bar:
        task = bar.add_task("vqvae epochs", total=p.epochs, completed=state["epoch"])
        while state["epoch"] < p.epochs and state["bad"] < p.patience:
            model.train()
            sums = {"recon": 0.0, "commit": 0.0, "dead": 0, "n": 0}
            counts = torch.zeros(p.codebook_size)
            for batch in feature_batches(store, train, p.batch_size, p.seed, state["epoch"]):
                out = model((batch - mean) / std, generator=gen)
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                optimizer.step()
                sums["recon"] += float(out.recon_loss.detach()) * len(batch)
                sums["commit"] += float(out.commit_loss.detach()) * len(batch)
                sums["dead"] += out.dead_restarted
                sums["n"] += len(batch)
                counts += torch.bincount(out.indices.detach(), minlength=p.codebook_size).float()
            held_mse, _ = evaluate(model, store, held, mean, std, p.batch_size)
            record = {"recon_mse": sums["recon"] / sums["n"],
                      "commit_loss": sums["commit"] / sums["n"],
                      "perplexity": float(torch.exp(-(counts / counts.sum() * torch.log(
                          counts / counts.sum() + 1e-12)).sum())),
                      "codes_in_use": codes_in_use(counts) / p.codebook_size,
                      "dead_restarted": sums["dead"], "holdout_recon_mse": held_mse}
            ctx.log_metrics(record, state["epoch"])
            state["history"].append(record)
            if held_mse < state["best"] - 1e-6:
                state["best"], state["bad"] = held_mse, 0
                save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                          ctx.workdir / "best.safetensors")
            else:
                state["bad"] += 1
            state["epoch"] += 1
            state["generator"] = gen.get_state()
            ckpt.save(model, optimizer, state)
            bar.update(task, completed=state["epoch"])

    from safetensors.torch import load_file

    model.load_state_dict(load_file(ctx.workdir / "best.safetensors"))
    os.replace(ctx.workdir / "best.safetensors", ctx.workdir / "model.safetensors")
    (ctx.workdir / "config.json").write_text(json.dumps(model.config(), indent=2, sort_keys=True))
    save_file({"mean": mean.contiguous(), "std": std.contiguous()},
              ctx.workdir / "normalizer.safetensors")
    train_mse, usage = evaluate(model, store, train, mean, std, p.batch_size)
    held_mse, _ = evaluate(model, store, held, mean, std, p.batch_size)
    idx = torch.repeat_interleave(torch.arange(p.codebook_size), usage.long())
    summary = {"train_recon_mse": train_mse, "holdout_recon_mse": held_mse,
               "perplexity": float(perplexity(idx, p.codebook_size)),
               "codes_in_use": codes_in_use(usage), "codebook_size": p.codebook_size,
               "codes_in_use_share": codes_in_use(usage) / p.codebook_size,
               "epochs": state["epoch"]}
    (ctx.workdir / "code_usage.json").write_text(json.dumps(usage.long().tolist()))
    (ctx.workdir / "history.json").write_text(json.dumps(state["history"], indent=1))
    plot_code_usage(usage, summary, ctx.workdir / "code_usage.png")
    ckpt.clear()
    return summary


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
