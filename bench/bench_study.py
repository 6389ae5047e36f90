"""Study efficiency: an Optuna study with stage reuse and pruning against the same trials run
as independent full pipelines.

Setup: a temporary project (``tests/support/tiny_project.py`` sizes by default,
``--params shipped`` for the repository's) on seeded synthetic data, with the repository's
``params/search.yaml`` (space, fixed 4 + 2 fine-tuning epochs, TPE seed 0, percentile
pruner). Two child processes, each with its own fresh ``SCENELLM_HOME``:

- study: ``scenellm tune --study bench --trials N`` (the Prefect ``tune`` flow, one
  worker, MLflow and the Optuna journal in the home). Trials share stage outputs by
  fingerprint (features computed once, the VQ-VAE once per codebook size) and the pruner
  stops weak trials after the warm-up epochs;
- independent: for every trial of that study, pruned ones included, the trial's params are
  rebuilt exactly as the study built them (``SearchConfig.trial_params``) and
  ``prepare → features → vqvae → finetune`` runs to the last epoch in a fresh store of its
  own: nothing shared, nothing pruned. All pipelines run in one process, so imports and
  orchestration are paid once; this favours the baseline, and the ratio is a lower bound.

Checks: for every trial the study completed, the independent run's objective (best epoch
of the validation metric) must equal the study's: reusing a stage output must not change a
result. Reported: wall and CPU seconds of both, their ratio, stage computations, pruned
trials and the best value each found.

    python bench/bench_study.py --json bench/results/bench_study.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from common import (
    REPO,
    SCENELLM,
    child_env,
    make_project,
    print_table,
    python_child,
    run_child,
    shipped_sizes,
    synth_data,
    write_json,
)

STUDY = "bench"
TOLERANCE = 1e-9  # objective values are recalls of the same predictions: equal, not close
# run as a script: python independent.py STUDY_HOME OUT_DIR STUDY_NAME
INDEPENDENT = """
import json, os, shutil, sys, time
from pathlib import Path
from scenellm.config.load import read_params_dir
from scenellm.project import Project
from scenellm.search.objective import best_epoch_value, read_history
from scenellm.search.report import load_study
from scenellm.search.space import load_search
from scenellm.stages.pipeline import run_until

study_home, out_dir, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
project = Project.discover()
search = load_search(project.params_dir / "search.yaml")
raw = read_params_dir(project.params_dir)
os.environ["SCENELLM_HOME"] = str(study_home)
trials = load_study(project, name).get_trials(deepcopy=False)
rows = []
for trial in trials:
    home = out_dir / f"trial{trial.number}"
    os.environ["SCENELLM_HOME"] = str(home)  # a fresh store per pipeline: nothing shared
    params = search.trial_params(raw, trial.params)
    start = time.perf_counter()
    results = run_until("finetune", params, Project(project.root))
    seconds = time.perf_counter() - start
    history = read_history(results["finetune"])
    value = best_epoch_value(history, search.objective.metric, search.objective.direction)
    rows.append({"number": trial.number, "seconds": seconds, "value": value,
                 "epochs": len(history),
                 "computed": [n for n, r in results.items() if not r.reused]})
    shutil.rmtree(home / "artifacts")  # keep the temporary disk small
    print(f"trial {trial.number}: {seconds:.1f} s, value {value:.4f}", flush=True)
print(json.dumps(rows))
"""


def study_trials(root: Path, home: Path) -> list[dict]:
    """Every trial of the study: number, state, value, pruned epoch, which stages computed."""
    code = f"""
import json, os
from scenellm.project import Project
from scenellm.search.report import load_study
os.environ["SCENELLM_HOME"] = {str(home)!r}
rows = []
for t in load_study(Project.discover(), {STUDY!r}).get_trials(deepcopy=False):
    stages = {{k[6:]: v for k, v in t.user_attrs.items() if k.startswith("stage.")}}
    rows.append({{"number": t.number, "state": t.state.name, "value": t.value,
                 "params": t.params, "pruned_at_epoch": t.user_attrs.get("pruned_at_epoch"),
                 "computed": [k for k, v in stages.items() if not v["reused"]]}})
print(json.dumps(rows))
"""
    child = python_child(code, root, child_env(home)).check("reading the study")
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument(
        "--params",
        choices=("tiny", "shipped"),
        default="tiny",
        help="tiny: the end-to-end tests' model sizes (minutes); shipped: params/*.yaml "
        "(about an hour for both sides on the default data)",
    )
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(160, 120), metavar=("W", "H"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scenellm-bench-study-") as tmp:
        tmp = Path(tmp)
        data = synth_data(tmp / "data", args.videos, args.frames, tuple(args.size), args.seed)
        root = tmp / "project"
        make_project(root, data, shipped_sizes() if args.params == "shipped" else None)
        shutil.copy(REPO / "params" / "search.yaml", root / "params" / "search.yaml")

        home = tmp / "study"
        cmd = [SCENELLM, "tune", "--study", STUDY, "--trials", str(args.trials), "--json"]
        study = run_child(cmd, root, child_env(home)).check("scenellm tune")
        trials = study_trials(root, home)
        script = tmp / "independent.py"
        script.write_text(INDEPENDENT)
        independent = run_child(
            [SCENELLM.parent / "python", script, home, tmp / "independent", STUDY],
            root,
            child_env(home),
            timeout=4 * 3600,
        ).check("independent pipelines")
        alone = {r["number"]: r for r in json.loads(independent.stdout.strip().splitlines()[-1])}
        shutil.rmtree(tmp / "independent", ignore_errors=True)

    mismatches = []
    for t in trials:
        other = alone[t["number"]]
        t["independent_value"], t["independent_seconds"] = other["value"], other["seconds"]
        if t["state"] == "COMPLETE" and abs(t["value"] - other["value"]) > TOLERANCE:
            mismatches.append((t["number"], t["value"], other["value"]))
    # a pruned trial's finetune stops before it records an output: count it as started
    computed_study = {s: sum(s in t["computed"] for t in trials) for s in STAGES}
    computed_study["finetune"] = sum(
        t["state"] == "PRUNED" or "finetune" in t["computed"] for t in trials
    )
    computed_alone = {s: sum(s in r["computed"] for r in alone.values()) for s in STAGES}
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    epochs_study = sum(
        t["pruned_at_epoch"] + 1 if t["state"] == "PRUNED" else alone[t["number"]]["epochs"]
        for t in trials
        if t["state"] == "PRUNED" or "finetune" in t["computed"]
    )
    ratio = independent.wall_s / study.wall_s
    rows = [
        {
            "run": f"study: reuse + pruning ({len(trials)} trials)",
            "wall_s": study.wall_s,
            "cpu_s": study.cpu_s,
            "pruned": len(pruned),
            "best": max((t["value"] for t in complete), default=float("nan")),
            **{f"{s} computed": computed_study[s] for s in STAGES},
            "finetune epochs": epochs_study,
        },
        {
            "run": "independent full pipelines",
            "wall_s": independent.wall_s,
            "cpu_s": independent.cpu_s,
            "pruned": 0,
            "best": max(r["value"] for r in alone.values()),
            **{f"{s} computed": computed_alone[s] for s in STAGES},
            "finetune epochs": sum(r["epochs"] for r in alone.values()),
        },
    ]
    print(
        f"study efficiency: {args.trials} trials, {args.videos} videos × {args.frames} frames, "
        f"{args.params} params, search space and pruner of params/search.yaml"
    )
    print_table(rows, ("run", "wall_s", "cpu_s", "pruned", "best",
                       *(f"{s} computed" for s in STAGES), "finetune epochs"))  # fmt: skip
    print_table(
        trials,
        ("number", "state", "pruned_at_epoch", "value", "independent_value",
         "independent_seconds", "computed"),  # fmt: skip
        title="trials (value: best validation epoch; independent: same params, full epochs)",
    )
    print(f"independent / study wall time: {ratio:.2f}x")
    if pruned:
        best_pruned = max(alone[t["number"]]["value"] for t in pruned)
        print(
            f"pruned trials run to the end reach at most {best_pruned:.4f} "
            f"(study best {rows[0]['best']:.4f}): pruning "
            + ("lost nothing" if best_pruned <= rows[0]["best"] else "LOST the best trial")
        )
    print(
        "completed trials with the same objective alone and in the study: "
        f"{len(complete) - len(mismatches)}/{len(complete)}"
    )
    write_json(
        args.json,
        {
            "benchmark": "study",
            "params": args.params,
            "trials": args.trials,
            "videos": args.videos,
            "frames_per_video": args.frames,
            "size": list(args.size),
            "seed": args.seed,
            "study": study.summary(),
            "independent": independent.summary(),
            "ratio_independent_over_study": ratio,
            "rows": rows,
            "per_trial": trials,
            "objective_mismatches": mismatches,
            "finetune_epochs": {"study": epochs_study, "independent": rows[1]["finetune epochs"]},
        },
    )
    if mismatches:
        raise SystemExit(f"reuse changed results (trial, study, alone): {mismatches}")


STAGES = ("prepare", "features", "vqvae", "finetune")

if __name__ == "__main__":
    main()
