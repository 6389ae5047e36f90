"""The inspection commands: ``--version``, ``config show``, ``study list``, ``runs
compare`` and clean ``--help`` text, run in-process on a copy of the project's params."""

from __future__ import annotations

import json
import re
import shutil
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scenellm.cli.main import app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "project"
    shutil.copytree(REPO / "params", root / "params")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(root)
    monkeypatch.setenv("SCENELLM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SCENELLM_OPTUNA_STORAGE", raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    return root


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_version_prints_the_installed_version():
    out = invoke("--version")
    assert out.exit_code == 0 and out.output.strip() == f"scenellm {version('scenellm')}"


def test_config_show_names_file_line_set_and_default_origins(project):
    (project / "params" / "vqvae.yaml").write_text(
        "\n".join(line for line in (project / "params" / "vqvae.yaml").read_text().splitlines()
                  if not line.strip().startswith("patience:")) + "\n")
    out = invoke("config", "show", "--set", "vqvae.epochs=3", "--json")
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["vqvae.epochs"] == {"value": 3, "origin": "--set vqvae.epochs"}
    assert re.fullmatch(r"params/vqvae\.yaml:\d+", shown["vqvae.codebook_size"]["origin"])
    assert shown["vqvae.patience"]["origin"] == "default"


def test_config_show_fits_80_columns(project):
    out = invoke("config", "show")
    assert out.exit_code == 0, out.output
    assert max(map(len, out.output.splitlines())) <= 80
    assert "vqvae.codebook_size" in out.output


def test_config_show_bad_override_is_one_line(project):
    out = invoke("config", "show", "--set", "vqvae.codebok_size=3")
    assert out.exit_code == 2 and "did you mean 'vqvae.codebook_size'" in out.output


def test_study_list_shows_each_study_with_trials_and_best(project, tmp_path):
    import optuna

    storage = str(tmp_path / "home" / "optuna.journal")
    from scenellm.search.space import Heartbeat
    from scenellm.search.storage import open_storage

    backend = open_storage(storage, Heartbeat())
    for name, values in (("lr-sweep", [0.3, 0.5]), ("empty", [])):
        study = optuna.create_study(study_name=name, storage=backend, direction="maximize")
        for v in values:
            study.add_trial(optuna.trial.create_trial(value=v, params={}, distributions={}))
    out = invoke("study", "list", "--json")
    assert out.exit_code == 0, out.output
    studies = {s["name"]: s for s in json.loads(out.output)["studies"]}
    assert studies["lr-sweep"]["trials"]["complete"] == 2
    assert studies["lr-sweep"]["best_value"] == 0.5 and studies["lr-sweep"]["best_trial"] == 1
    assert studies["empty"]["best_value"] is None
    table = invoke("study", "list").output
    assert "lr-sweep" in table and "0.5000 (#1)" in table


def test_runs_compare_prints_runs_side_by_side_and_writes_csv(project, tmp_path):
    from scenellm.project import Project
    from scenellm.tracking.runs import Tracker

    tracker = Tracker(Project(project).mlflow_tracking_uri, "scenellm")
    for n in range(3):
        run = tracker.start_parent(f"train-run-{n}", {}, {"lora": {"rank": 4 * (n + 1)}})
        tracker.log_metrics(run, {"predcls_with_R@20": 0.25 * n})
    out = invoke("runs", "compare", "--last", "2")
    assert out.exit_code == 0, out.output
    assert "train-run-1" in out.output and "train-run-2" in out.output
    assert "train-run-0" not in out.output
    assert "lora.rank" in out.output and "predcls_with_R_at_20" in out.output
    csv = Path(out.output.split("table (mlflow.search_runs columns): ")[1].split()[0])
    assert csv.is_file() and "params.lora.rank" in csv.read_text()
    assert max(map(len, out.output.splitlines())) <= 80 or "compare-runs" in out.output


def test_runs_compare_of_an_unknown_run_is_one_line(project):
    from scenellm.project import Project
    from scenellm.tracking.runs import Tracker

    Tracker(Project(project).mlflow_tracking_uri, "scenellm")
    out = invoke("runs", "compare", "nope")
    assert out.exit_code == 2 and "no run 'nope'" in out.output


@pytest.mark.parametrize("command", [[], ["run"], ["tune"], ["predict"], ["runs", "compare"],
                                     ["config", "show"], ["promote"]])
def test_help_has_no_type_labels_of_flags_or_lists_and_no_source_line_breaks(command):
    out = invoke(*command, "--help")
    assert out.exit_code == 0
    assert "<bool>" not in out.output and "<list[" not in out.output
    # A reflowed paragraph fills its lines: in the description and the commands table no
    # line ends far before the edge while the next continues the sentence in lower case.
    lines, box = [], None
    for line in out.output.splitlines():
        if line.startswith("╭"):
            box = line
        elif line.startswith("╰"):
            box = None
        elif box is None or "Commands" in box:
            lines.append(line.strip("│ "))
    short = [a for a, b in zip(lines, lines[1:], strict=False)
             if 0 < len(a) < 40 and b[:1].islower() and not a.endswith((".", ":"))]
    assert not short, short
