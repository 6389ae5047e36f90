"""``finetune``: phases (b) and (c) of SceneLLM training (DESIGN §2 item 7).

(b) VQ-VAE and LLM frozen: train token projection, SIA (box MLP + GCN), OT scene words and
the predictor. (c) add the LLM adapters (LoRA, or all LLM weights for ``llm.mode=full``).
AdamW, seeded, gradient clipping, per-epoch validation PREDCLS R@20 (with constraint) on
held-out train videos, a checkpoint every epoch (resumed after a kill), and the best epoch
saved as a self-contained model directory.
"""

from __future__ import annotations

import json
import random

from scenellm.stages.base import StageContext, StageSpec

SPEC = StageSpec(
    name="finetune",
    sections=("model", "ot", "llm", "lora", "finetune"),
    upstream=("prepare", "features", "vqvae"),
    code=("model", "stages/finetune.py", "stages/scene_data.py", "stages/checkpoint.py",
          "evaluation"),
)
VAL_METRIC = "val_predcls_R@20"


def model_config(ctx: StageContext, feature_dim: int):
    from scenellm.model.scenellm import SceneLLMConfig

    p = ctx.params
    return SceneLLMConfig(
        feature_dim=feature_dim, tokens=p.model.tokens, temporal=p.model.temporal,
        d_model=p.model.d_model, sia_groups=p.model.sia_groups,
        decoder_layers=p.model.decoder_layers, gate_alpha=p.model.gate_alpha,
        num_scene_tokens=p.ot.num_scene_tokens, ot_epsilon=p.ot.epsilon,
        ot_max_iter=p.ot.max_iter, ot_tol=p.ot.tol, llm_path=p.llm.path, llm_mode=p.llm.mode,
        llm_prompt=p.llm.prompt, lora_rank=p.lora.rank, lora_alpha=p.lora.alpha,
        lora_dropout=p.lora.dropout, lora_target_modules=p.lora.target_modules)


def recall_at_20(model, data, videos, device, batch_videos: int, mode: str = "predcls"):
    """Mean R@20 with constraint over ``videos`` (STTran semantics)."""
    import torch

    from scenellm.data import vocab
    from scenellm.evaluation import SceneGraphEvaluator
    from scenellm.stages.scene_data import sttran_predictions

    evaluator = SceneGraphEvaluator(mode, list(vocab.STTRAN_OBJECT_CLASSES),
                                    list(vocab.PREDICATES), list(vocab.ATTENTION),
                                    list(vocab.SPATIAL), list(vocab.CONTACTING),
                                    constraint="with")
    model.eval()
    with torch.no_grad():
        for start in range(0, len(videos), batch_videos):
            batch = data.batch(videos[start:start + batch_videos]).to(device)
            out = model(batch, mode=mode)
            for b, vid in enumerate(batch.video_ids):
                evaluator.evaluate_scene_graph(data.sttran_gt(vid),
                                               sttran_predictions(batch, out, b, mode != "predcls"))
    return float(evaluator.summary()["R@20"])


def run(ctx: StageContext) -> dict:
    import torch
    from rich.progress import Progress

    from scenellm.features.device import autocast_context, select_device
    from scenellm.model.checkpoint import save_finetuned
    from scenellm.model.losses import sgg_loss
    from scenellm.model.scenellm import SceneLLM
    from scenellm.stages.checkpoint import EpochCheckpoint
    from scenellm.stages.feature_stream import holdout_split
    from scenellm.stages.scene_data import SceneGraphData
    from scenellm.stages.vqvae import load_trained

    p = ctx.params.finetune
    device = select_device(p.device)
    random.seed(p.seed)
    torch.manual_seed(p.seed)
    data = SceneGraphData(ctx.input_path("features"), ctx.input_path("prepare"))
    train, val = holdout_split(data.videos("train"), p.val_fraction, salt="finetune")
    vqvae, mean, std = load_trained(ctx.input_path("vqvae"))
    model = SceneLLM(model_config(ctx, data.store.load_manifest()["feature_dim"]), vqvae,
                     mean, std).to(device)
    adapters = model.adapter_parameters()
    adapter_ids = {id(q) for q in adapters}
    heads = [q for n, q in model.named_parameters()
             if id(q) not in adapter_ids and not n.startswith(("vqvae.", "llm.llm."))]
    for q in model.llm.llm.parameters() if model.config.llm_mode != "none" else []:
        q.requires_grad_(False)
    groups = [{"params": heads, "lr": p.lr}]
    if adapters:
        groups.append({"params": adapters, "lr": p.lora_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=p.weight_decay)
    total = p.phase_b_epochs + p.phase_c_epochs
    ckpt = EpochCheckpoint(ctx.workdir / "checkpoint")
    state = ckpt.restore(model, optimizer) or {"epoch": 0, "best": -1.0, "history": []}
    if "torch_rng" in state:  # dropout draws continue exactly where the killed run stopped
        torch.set_rng_state(state["torch_rng"])
    with Progress(transient=True) as bar:
        task = bar.add_task("finetune epochs", total=total, completed=state["epoch"])
        while state["epoch"] < total:
            epoch = state["epoch"]
            phase = "b" if epoch < p.phase_b_epochs else "c"
            for q in adapters:
                q.requires_grad_(phase == "c")
            order = list(train)
            random.Random(p.seed * 7919 + epoch).shuffle(order)
            model.train()
            losses: dict[str, float] = {}
            steps = 0
            for start in range(0, len(order), p.batch_videos):
                batch = data.batch(order[start:start + p.batch_videos]).to(device)
                with autocast_context(device, p.mixed_precision):
                    out = model(batch, mode="predcls")
                    loss, parts = sgg_loss(out, batch.targets())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([q for g in groups for q in g["params"]],
                                               p.grad_clip)
                optimizer.step()
                steps += 1
                for k, v in parts.items():
                    losses[k] = losses.get(k, 0.0) + v
            val_r20 = recall_at_20(model, data, val, device, p.batch_videos)
            record = {f"train_loss_{k}": v / steps for k, v in losses.items()}
            record[VAL_METRIC] = val_r20
            record["phase_c"] = float(phase == "c")
            state["history"].append(record)
            if val_r20 > state["best"]:
                state["best"] = val_r20
                save_finetuned(model, ctx.workdir / "model.tmp", ctx.input_path("vqvae"))
                import shutil

                shutil.rmtree(ctx.workdir / "model", ignore_errors=True)
                (ctx.workdir / "model.tmp").rename(ctx.workdir / "model")
            state["epoch"] += 1
            state["torch_rng"] = torch.get_rng_state()
            ckpt.save(model, optimizer, state)
            ctx.log_metrics(record, epoch)  # may raise to prune (studies)
            bar.update(task, completed=state["epoch"])
    ckpt.clear()
    (ctx.workdir / "history.json").write_text(json.dumps(state["history"], indent=1))
    counts = model.llm.trainable_parameters()
    return {"best_" + VAL_METRIC: state["best"], "epochs": state["epoch"],
            "train_videos": len(train), "val_videos": len(val),
            "llm_trainable_params": counts.trainable, "llm_total_params": counts.total}
