"""End to end on a tiny synthetic dataset: every stage, reuse, determinism, kill + resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_project import make_project

from scenellm.config.load import load_params
from scenellm.data.synth import generate
from scenellm.stages.base import SUCCESS, tree_hash
from scenellm.stages.pipeline import run_until
from scenellm.stages.registry import PIPELINE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ag") / "data"
    generate(out, seed=3, videos=12, frames=6, size=(96, 72))
    return out


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, dataset):
    root = tmp_path_factory.mktemp("project")
    project = make_project(root, dataset)
    params = load_params(project.params_dir)
    return project, params, run_until("evaluate", params, project)


def test_all_stages_computed_then_reused(first_run):
    project, params, results = first_run
    assert [r.reused for r in results.values()] == [False] * len(PIPELINE)
    again = run_until("evaluate", params, project)
    assert all(r.reused for r in again.values())
    assert {k: r.fingerprint for k, r in again.items()} == \
        {k: r.fingerprint for k, r in results.items()}
    evaluate = json.loads((results["evaluate"].path / "metrics.json").read_text())
    for who in ("model", "baseline"):
        for mode in ("predcls", "sgcls"):
            for c in ("with", "semi", "no"):
                assert 0.0 <= evaluate[who][mode][c]["R@20"] <= 1.0
    assert (results["evaluate"].path / "recall.png").stat().st_size > 1000
    assert (results["vqvae"].path / "code_usage.png").exists()
    assert (results["finetune"].path / "model" / "llm" / "adapter_config.json").exists()


def test_same_seed_same_metrics(first_run, tmp_path, dataset):
    _, params, results = first_run
    other = make_project(tmp_path, dataset)
    again = run_until("evaluate", params, other)
    assert not any(r.reused for r in again.values())
    assert again["evaluate"].metrics == results["evaluate"].metrics
    assert again["features"].output_hash == results["features"].output_hash


def test_changing_lora_rank_reuses_upstream(first_run):
    project, params, results = first_run
    changed = params.model_copy(update={"lora": params.lora.model_copy(update={"rank": 2})})
    again = run_until("finetune", changed, project)
    assert again["vqvae"].reused and again["features"].reused
    assert not again["finetune"].reused


def test_feature_stage_killed_then_resumed_is_byte_identical(first_run, tmp_path, dataset):
    _, _, results = first_run
    root = tmp_path / "killed"
    make_project(root, dataset)
    cmd = [sys.executable, "-m", "scenellm.cli.main", "stage", "features", "--json"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    shards = root / ".scenellm" / "artifacts" / "stages" / "features"
    deadline = time.time() + 300
    while time.time() < deadline:
        found = list(shards.glob("*.partial/shards/*.safetensors"))
        if len(found) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(shards.glob(f"*/{SUCCESS}")), "the killed run must not look complete"
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout)
    videos = len(list((results["features"].path / "shards").glob("*.safetensors")))
    assert f"features: resumed with {summary['reused']} of {videos} videos written" in out.stderr
    assert f"features: {videos}/{videos} videos" in out.stderr  # plain lines outside a terminal
    assert summary["reused"] >= 3 and summary["computed"] == videos - summary["reused"]
    final = Path(summary["output"])
    assert tree_hash(final) == results["features"].output_hash
    rerun = json.loads(subprocess.run(cmd, cwd=root, capture_output=True, text=True,
                                      check=True).stdout)
    assert rerun["computed"] == 0


def test_corrupted_shard_is_recomputed(first_run):
    project, params, results = first_run
    shard = next((results["features"].path / "shards").glob("*.safetensors"))
    original = shard.read_bytes()
    shard.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    again = run_until("features", params, project)
    assert not again["features"].reused and again["features"].metrics["computed"] == 1
    assert shard.read_bytes() == original


def test_features_separate_object_classes(first_run):
    """A linear probe on train-split object features beats chance on the test split."""
    import torch

    from scenellm.features.store import FeatureStore

    _, _, results = first_run
    store = FeatureStore(results["features"].path)
    split = {"train": ([], []), "test": ([], [])}
    for vid, entry in store.load_manifest()["shards"].items():
        shard = store.read_shard(vid)
        keep = shard["labels"] != 1
        split[entry["split"]][0].append(shard["obj_feats"][keep])
        split[entry["split"]][1].append(shard["labels"][keep])
    xtr, ytr = torch.cat(split["train"][0]), torch.cat(split["train"][1])
    xte, yte = torch.cat(split["test"][0]), torch.cat(split["test"][1])
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    torch.manual_seed(0)
    probe = torch.nn.Linear(xtr.shape[1], 37)
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(probe((xtr - mean) / std), ytr).backward()
        opt.step()
    accuracy = float((probe((xte - mean) / std).argmax(1) == yte).float().mean())
    majority = float((yte == torch.mode(ytr).values).float().mean())
    uniform = 1 / len(ytr.unique())
    assert accuracy > max(2 * uniform, majority), (accuracy, uniform, majority)


def test_vqvae_training_lowers_reconstruction_error(first_run):
    _, _, results = first_run
    history = json.loads((results["vqvae"].path / "history.json").read_text())
    assert history[-1]["recon_mse"] < history[0]["recon_mse"]
    usage = json.loads((results["vqvae"].path / "code_usage.json").read_text())
    assert len(usage) == 16 and sum(c > 0 for c in usage) == results["vqvae"].metrics[
        "codes_in_use"]


@pytest.mark.parametrize("stage, epochs", [("vqvae", {"vqvae.epochs": 6}),
                                           ("finetune", {"finetune.phase_b_epochs": 2,
                                                         "finetune.phase_c_epochs": 2})])
def test_training_stage_killed_then_resumed_matches_uninterrupted(first_run, stage, epochs):
    """Kill a training stage after its first epoch checkpoint; the resumed run's output
    is byte-identical to an uninterrupted run's."""
    project, params, _ = first_run
    sets = [f"{k}={v}" for k, v in epochs.items()]
    cmd = [sys.executable, "-m", "scenellm.cli.main", "stage", stage, "--json",
           *sum((["--set", s] for s in sets), [])]
    clean = json.loads(subprocess.run(cmd, cwd=project.root, capture_output=True, text=True,
                                      check=True).stdout)
    final = Path(clean["output"])
    expected = json.loads((final / SUCCESS).read_text())["output_hash"]
    shutil.rmtree(final)
    proc = subprocess.Popen(cmd, cwd=project.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    checkpoint = final.with_name(final.name + ".partial") / "checkpoint" / "train.pt"
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists() and not final.exists(), "killed after the first checkpoint"
    resumed = json.loads(subprocess.run(cmd, cwd=project.root, capture_output=True,
                                        text=True, check=True).stdout)
    assert resumed["output"] == clean["output"] and resumed["computed"] == 1
    assert tree_hash(final) == expected


CORRUPT = {"prepare": "objects.parquet", "features": "manifest.json",
           "vqvae": "model.safetensors", "finetune": "model/weights.safetensors",
           "evaluate": "metrics.json"}


@pytest.mark.parametrize("stage", list(CORRUPT))
def test_a_corrupted_output_file_of_any_stage_is_recomputed(first_run, stage, capsys):
    """A flipped byte (size and mtime kept) in any stage's output: the next run says so,
    recomputes that stage to the same bytes, and reuses every other stage."""
    import os

    project, params, results = first_run
    path = results[stage].path / CORRUPT[stage]
    original, st = path.read_bytes(), path.stat()
    path.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = run_until("evaluate", params, project)
    assert again[stage].note.startswith(f"recomputed: {CORRUPT[stage]} changed")
    assert f"{stage} output" in capsys.readouterr().err
    assert path.read_bytes() == original
    assert again[stage].output_hash == results[stage].output_hash
    assert [n for n, r in again.items() if not r.reused] == [stage]


def test_a_diverging_vqvae_stops_in_one_line_and_keeps_nothing(first_run):
    from scenellm.errors import TrainingDiverged

    project, params, _ = first_run
    wild = params.model_copy(update={"vqvae": params.vqvae.model_copy(update={"lr": 1e6})})
    with pytest.raises(TrainingDiverged, match=r"^vqvae: .* lower vqvae.lr \(now 1e\+06\)"):
        run_until("vqvae", wild, project)
    stage_dir = project.stage_dir("vqvae")
    assert not [p for p in stage_dir.iterdir() if p.name.endswith(".partial")]


def _finetune(project, *sets: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "scenellm.cli.main", "stage", "finetune", "--json",
           *sum((["--set", s] for s in sets), [])]
    return subprocess.run(cmd, cwd=project.root, capture_output=True, text=True)


def test_step_budget_and_patience_end_training_and_are_recorded(first_run):
    project, _, _ = first_run
    budget = _finetune(project, "finetune.max_steps=3", "finetune.phase_b_epochs=4")
    assert budget.returncode == 0, budget.stderr
    record = json.loads((Path(json.loads(budget.stdout)["output"]) / SUCCESS).read_text())
    per_epoch = -(-record["metrics"]["train_videos"] // 4)  # batches of 4 videos
    assert per_epoch < 3  # so the budget ends inside a later epoch, not at the last one
    assert record["metrics"]["steps"] == 3
    assert record["metrics"]["epochs"] == -(-3 // per_epoch)
    from scenellm.model.checkpoint import load_finetuned

    kept = load_finetuned(Path(json.loads(budget.stdout)["output"]) / "model").predictor
    # the query's geometry is standardised by the training pairs' statistics, kept with it
    assert float(kept.geometry_mean.abs().sum()) > 0
    assert float((kept.geometry_std - 1).abs().max()) > 0.1
    patient = _finetune(project, "finetune.patience=1", "finetune.phase_b_epochs=6",
                        "finetune.lr=1e-9", "finetune.warmup_steps=0")
    assert patient.returncode == 0, patient.stderr
    out = json.loads((Path(json.loads(patient.stdout)["output"]) / SUCCESS).read_text())
    out["summary"] = out["metrics"]
    history = json.loads((Path(json.loads(patient.stdout)["output"]) / "history.json")
                         .read_text())
    # lr 1e-9 changes nothing: epoch 1 is no better than epoch 0, and patience 1 stops there
    assert out["summary"]["epochs"] == 2 and out["summary"]["stopped_early"] == 1.0
    assert out["summary"]["best_epoch"] == 0 and out["summary"]["best_phase_c"] == 0.0
    assert len(history) == 2 and history[0]["lr"] > 0


def test_non_finite_loss_stops_finetune_with_one_line_and_no_success(first_run):
    project, _, _ = first_run
    before = sorted(p.name for p in project.stage_dir("finetune").iterdir())
    proc = _finetune(project, "finetune.lr=1e30", "finetune.warmup_steps=0",
                     "finetune.grad_clip=1e30", "finetune.phase_b_epochs=3")
    assert proc.returncode != 0
    assert "finetune: the" in proc.stderr and "became non-finite" in proc.stderr
    assert "Traceback" not in proc.stderr
    after = sorted(p.name for p in project.stage_dir("finetune").iterdir())
    assert [n for n in after if not n.endswith(".lock")] == \
        [n for n in before if not n.endswith(".lock")]  # no record, no partial kept


@pytest.mark.parametrize("select", ["R@20", "R@20+mR@20", "last"])
def test_select_keeps_the_epoch_it_names_and_reports_its_figures(first_run, select):
    project, _, _ = first_run
    proc = _finetune(project, f"finetune.select={select}", "finetune.phase_b_epochs=3",
                     "finetune.phase_c_epochs=1")
    assert proc.returncode == 0, proc.stderr
    out = Path(json.loads(proc.stdout)["output"])
    metrics = json.loads((out / SUCCESS).read_text())["metrics"]
    history = json.loads((out / "history.json").read_text())
    recall = [h["val_predcls_R@20"] for h in history]
    mean_recall = [h["val_predcls_mR@20"] for h in history]
    assert len(history) == 4 and all(0 <= m <= 1 for m in mean_recall)
    score = {"R@20": recall, "R@20+mR@20": [(r + m) / 2 for r, m in zip(recall, mean_recall, strict=True)],
             "last": list(range(4))}[select]
    kept = score.index(max(score))  # the first of equals, as training keeps it
    assert metrics["best_epoch"] == kept
    assert metrics["best_val_predcls_R@20"] == recall[kept]
    assert metrics["best_val_predcls_mR@20"] == mean_recall[kept]
    assert metrics["best_phase_c"] == float(kept >= 3)


def test_balance_weighs_the_rare_contacting_positives_in_training(first_run):
    project, _, _ = first_run
    losses = {}
    for beta in ("0", "1"):
        proc = _finetune(project, f"finetune.balance={beta}", "finetune.phase_b_epochs=1",
                         "finetune.phase_c_epochs=0")
        assert proc.returncode == 0, proc.stderr
        history = json.loads((Path(json.loads(proc.stdout)["output"]) / "history.json")
                             .read_text())
        losses[beta] = history[0]
    # every contacting predicate is on fewer than half the pairs: its positives weigh > 1
    # (unwired, the two runs would give the same losses: same seed, same data)
    assert losses["1"]["train_loss_contacting"] > 1.05 * losses["0"]["train_loss_contacting"]
    assert losses["1"]["train_loss_attention"] == pytest.approx(
        losses["0"]["train_loss_attention"], rel=0.2)
