"""PNG plots of a study with Optuna's matplotlib backend: optimization history, per-epoch
values (where pruning happened), parameter importances, parallel coordinates; axes named in
the study's own words (epoch, the objective metric) rather than Optuna's generic ones."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning

MIN_PARALLEL = 3  # complete trials below which parallel coordinates show no pattern


def _save(ax, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    figure.set_size_inches(9, 5)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _relabel(ax, metric: str, title: str, x: str | None = None):
    ax.set_ylabel(metric)
    if x:
        ax.set_xlabel(x)
    ax.set_title(title)
    return ax


def plot_names(study: optuna.Study, importances: dict[str, float] | None) -> list[str]:
    """The plots the study's trials support: the history always, per-epoch values when a
    trial reported any, parallel coordinates from :data:`MIN_PARALLEL` complete trials, the
    importances when they could be computed."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    names = ["optimization_history"]
    if any(t.intermediate_values for t in trials):
        names.append("intermediate_values")
    if len(complete) >= MIN_PARALLEL:
        names.append("parallel_coordinate")
    if importances:
        names.append("param_importances")
    return names


def save_plots(
    study: optuna.Study, out_dir: Path, importances: dict[str, float] | None, evaluator=None
) -> list[Path]:
    """The plots of :func:`plot_names`, written under ``out_dir``; the importance plot uses
    ``evaluator`` (the report's)."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as vis

    metric = study.user_attrs.get("objective_metric") or "objective"
    draw = {
        "optimization_history": lambda: _relabel(
            vis.plot_optimization_history(study, target_name=metric), metric,
            f"{study.study_name}: {metric} per trial", "trial"),
        "intermediate_values": lambda: _relabel(
            vis.plot_intermediate_values(study), f"validation {metric.removeprefix('val_')}",
            f"{study.study_name}: {metric} per epoch (pruning looks at these)", "epoch"),
        "parallel_coordinate": lambda: vis.plot_parallel_coordinate(study, target_name=metric),
        "param_importances": lambda: vis.plot_param_importances(
            study, evaluator=evaluator, target_name=metric),
    }
    paths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.filterwarnings("ignore", message=".*ylim.*")  # one value: a flat axis
        warnings.filterwarnings("ignore", message=".*singular transformation.*")
        warnings.filterwarnings("ignore", message="No artists with labels")
        for name in plot_names(study, importances):
            paths.append(_save(draw[name](), out_dir / f"{name}.png"))
    return paths
