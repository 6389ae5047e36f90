"""PNG plots of a study with Optuna's matplotlib backend: optimization history, per-epoch
values (where pruning happened), parameter importances, parallel coordinates."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning


def _save(ax, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    figure.set_size_inches(9, 5)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def save_plots(
    study: optuna.Study, out_dir: Path, importances: dict[str, float] | None, evaluator=None
) -> list[Path]:
    """The plots that the study's finished trials support, written under ``out_dir``.

    The importance plot (with ``evaluator``, the report's) is drawn only where
    ``importances`` could be computed (at least two complete trials).
    """
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as vis

    complete = [
        t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE
    ]
    paths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        paths.append(
            _save(vis.plot_optimization_history(study), out_dir / "optimization_history.png")
        )
        if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            paths.append(
                _save(vis.plot_intermediate_values(study), out_dir / "intermediate_values.png")
            )
        if complete:
            paths.append(
                _save(vis.plot_parallel_coordinate(study), out_dir / "parallel_coordinate.png")
            )
        if importances:
            paths.append(
                _save(
                    vis.plot_param_importances(study, evaluator=evaluator),
                    out_dir / "param_importances.png",
                )
            )
    return paths
