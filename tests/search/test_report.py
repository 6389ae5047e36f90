"""The study report: best trial, trial table, importances, plots, MLflow, promotion."""

from __future__ import annotations

import csv

import mlflow
import optuna
import pytest

from scenellm.errors import UserError
from scenellm.search.report import build_report, render_markdown, study_report, write_report
from scenellm.search.study import PARENT

PNG = b"\x89PNG\r\n\x1a\n"


def synthetic_study() -> optuna.Study:
    """In memory: 6 complete trials where only ``lora.rank`` matters, and 2 pruned."""
    study = optuna.create_study(
        study_name="synthetic", direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    for i in range(8):
        trial = study.ask()
        rank = trial.suggest_categorical("lora.rank", [2, 4, 8])
        eps = trial.suggest_float("ot.epsilon", 0.01, 0.5, log=True)
        trial.report(0.1 * rank, 0)
        if i >= 6:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, 0.1 * rank + 1e-3 * eps)
    study.set_user_attr("objective_metric", "val_predcls_R@20")
    return study


def test_report_of_a_synthetic_study(tmp_path):
    study = synthetic_study()
    report = build_report(study, "memory")
    assert report["counts"]["complete"] == 6 and report["counts"]["pruned"] == 2
    assert report["best"]["number"] == study.best_trial.number
    assert report["best"]["params"] == study.best_trial.params
    assert report["importances"]["lora.rank"] > report["importances"]["ot.epsilon"]
    assert sum(report["importances"].values()) == pytest.approx(1.0)
    assert [r["state"] for r in report["trials"]] == ["COMPLETE"] * 6 + ["PRUNED"] * 2
    markdown = render_markdown(report)
    assert f"best trial {study.best_trial.number}" in markdown and "| `lora.rank` |" in markdown
    files = write_report(report, study, tmp_path)
    names = {p.name for p in files}
    assert {
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinate.png",
        "intermediate_values.png",
        "trials.csv",
        "summary.json",
        "report.md",
    } == names
    for path in files:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
    rows = list(csv.DictReader(open(tmp_path / "trials.csv")))
    assert [int(r["number"]) for r in rows] == list(range(8)) and "lora.rank" in rows[0]


def test_report_without_complete_trials_says_why(tmp_path):
    study = optuna.create_study()
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    report = build_report(study, "memory")
    assert report["best"] is None and report["importances"] is None
    assert "at least 2 complete trials" in report["importances_note"]
    names = {p.name for p in write_report(report, study, tmp_path)}
    assert "param_importances.png" not in names and "optimization_history.png" in names
    assert "parallel_coordinate.png" not in names


def test_plots_are_labelled_in_the_study_words_and_sparse_studies_skip_parallel_plot(tmp_path):
    import matplotlib

    from scenellm.search import plots

    matplotlib.use("Agg")
    study = synthetic_study()
    labels = []
    original = plots._save

    def keep_labels(ax, path):
        labels.append((path.name, ax.get_xlabel(), ax.get_ylabel()))
        return original(ax, path)

    plots._save = keep_labels
    try:
        plots.save_plots(study, tmp_path, None)
    finally:
        plots._save = original
    got = {name: (x, y) for name, x, y in labels}
    assert got["intermediate_values.png"] == ("epoch", "validation predcls_R@20")
    assert got["optimization_history.png"] == ("trial", "val_predcls_R@20")
    two = optuna.create_study(direction="maximize")
    for v in (0.1, 0.2):
        two.add_trial(optuna.trial.create_trial(
            value=v, params={"x": v}, distributions={"x": optuna.distributions.FloatDistribution(0, 1)}))
    assert "parallel_coordinate" not in plots.plot_names(two, None)
    assert "parallel_coordinate" in plots.plot_names(study, None)


@pytest.mark.slow
def test_study_report_is_logged_to_the_parent_run(studied, read_study):
    project, _ = studied
    report = study_report(project, "base")
    study = read_study(project, "base")
    assert report["best"]["number"] == study.best_trial.number
    assert len(report["trials"]) == len(study.trials)
    client = mlflow.MlflowClient(project.mlflow_tracking_uri)
    logged = {a.path for a in client.list_artifacts(study.user_attrs[PARENT], "report")}
    assert {"report/optimization_history.png", "report/trials.csv"} <= logged
    complete = sum(t.state.name == "COMPLETE" for t in study.trials)
    assert ("report/parallel_coordinate.png" in logged) == (complete >= 3)
    with pytest.raises(UserError, match="study 'nope' not found.*base"):
        study_report(project, "nope")


@pytest.mark.slow
def test_promote_registers_the_best_trial_with_the_champion_rule(studied, read_study):
    project, _ = studied
    first = study_report(project, "base", promote=True)["promotion"]
    study = read_study(project, "base")
    best_run = study.best_trial.user_attrs["mlflow_run_id"]
    assert first["alias"] == "champion" and first["run_id"] == best_run
    client = mlflow.MlflowClient(project.mlflow_tracking_uri)
    version = client.get_model_version("scenellm", str(first["version"]))
    assert version.run_id == best_run and version.tags["metric"] == repr(first["metric"])
    # the rule compared the trial's validation score; the test score is only reported
    assert version.tags["metric_name"] == "val_predcls_R@20"
    assert first["metric"] == pytest.approx(study.best_trial.value)
    run = client.get_run(best_run)
    assert run.data.metrics["test_predcls_with_R_at_20"] == pytest.approx(
        float(version.tags["test.predcls_with_R_at_20"]))
    assert run.data.tags["scenellm.registered_alias"] == "champion"
    second = study_report(project, "base", promote=True)["promotion"]
    assert second["alias"] == "challenger" and second["previous_champion"] == first["version"]
    assert second["metric"] == first["metric"]  # evaluate output reused, same score
