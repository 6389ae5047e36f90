"""``scenellm``: the command line. Heavy libraries are imported inside commands."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import typer

from scenellm.cli import audit as audit_cmd
from scenellm.cli import config as config_cmd
from scenellm.cli import data as data_cmd
from scenellm.cli import detections as detections_cmd
from scenellm.cli import dvc as dvc_cmd
from scenellm.cli import predict as predict_cmd
from scenellm.cli import promote as promote_cmd
from scenellm.cli import runs as runs_cmd
from scenellm.cli import tune as tune_cmd
from scenellm.cli.help_text import plain_type_labels, reflow_app
from scenellm.errors import ServiceError, UserError

app = typer.Typer(
    name="scenellm",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmd.app, name="data")
app.add_typer(detections_cmd.app, name="detections")
app.add_typer(dvc_cmd.app, name="dvc")

SetOption = typer.Option(None, "--set", help="Override a param, e.g. --set vqvae.codebook_size=64 "
                                           "(repeatable).")
ParamsOption = typer.Option(None, "--params", help="Params folder (default: <project>/params).")
NprocOption = typer.Option(None, "--nproc", min=1, help="Data-parallel processes of vqvae and "
                           "finetune (torchrun + DDP; one GPU each on CUDA): short for --set "
                           "vqvae.nproc=N --set finetune.nproc=N.")


def with_nproc(overrides: list[str] | None, nproc: int | None) -> list[str] | None:
    """``overrides`` plus the ``--nproc`` shorthand's params."""
    if nproc is None:
        return overrides
    return [*(overrides or []), f"vqvae.nproc={nproc}", f"finetune.nproc={nproc}"]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"scenellm {version('scenellm')}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Experiment platform for dynamic scene graph generation with SceneLLM.

    Stages: prepare → features → detect → vqvae → finetune → evaluate. Run `scenellm run` for the
    whole pipeline on the embedded defaults, `scenellm run --dry-run` to see what it would
    do, `scenellm config show` for the params it would use.
    """


def user_errors(fn):
    """Print a user-caused error as one line and exit with code 2; a service that failed
    under the run (:class:`ServiceError`) as one line with exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(2) from None
        except ServiceError as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            if exc.exit_now:  # every output is already on disk, atomically
                import os
                import sys

                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(1)
            raise typer.Exit(1) from None

    return wrapper


def load(params_dir: Path | None, overrides: list[str] | None):
    from scenellm.config.load import load_params
    from scenellm.project import Project

    project = Project.discover()
    return project, load_params(params_dir or project.params_dir, overrides)


VerifyOption = typer.Option(False, "--verify", help="Hash every file of a reused output "
                            "against its manifest (default: only files whose size, mtime, "
                            "ctime or inode changed).")
ForceOption = typer.Option(None, "--force", help="Recompute this stage even when its output "
                           "is intact (repeatable), e.g. --force vqvae.")
DryRunOption = typer.Option(False, "--dry-run", help="Print, per stage, whether it would be "
                            "reused, computed, resumed, recomputed or fetched from the shared "
                            "DVC remote, and why; run nothing.")


@app.command()
@user_errors
def stage(
    name: str = typer.Argument(..., help="Stage to run: prepare, features, detect, vqvae, "
                                         "finetune, evaluate. Upstream stages run (or are reused) first."),
    overrides: list[str] = SetOption,
    nproc: int = NprocOption,
    params_dir: Path = ParamsOption,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    publish: Path = typer.Option(None, help="Also expose the output at this path (used by "
                                            "dvc.yaml); files are hard-linked."),
    metrics: Path = typer.Option(None, help="Also write the stage metrics as JSON here."),
    history: Path = typer.Option(None, help="Also write the stage's per-epoch history "
                                            "(training stages) as JSON here."),
    verify: bool = VerifyOption,
    force: list[str] = ForceOption,
    dry_run: bool = DryRunOption,
    join: bool = typer.Option(False, "--join", help="Help this stage's run in progress on "
                              "the same store (features only): write the shards nobody has "
                              "claimed, then exit; the run itself merges and publishes. Start "
                              "one per extra worker."),
    wait: float = typer.Option(600.0, "--wait", min=0, help="With --join: seconds to wait "
                               "for the run to plan its shards."),
) -> None:
    """Run one pipeline stage, reusing every output whose inputs did not change."""
    from scenellm.cli.report import print_plan, print_stage_results, write_history, write_metrics
    from scenellm.cli.run import prefect_for_shards
    from scenellm.stages.pipeline import resolve_data, run_until
    from scenellm.stages.plan import plan
    from scenellm.stages.preflight import preflight
    from scenellm.stages.publish import publish_output
    from scenellm.stages.registry import check_names

    project, params = load(params_dir, with_nproc(overrides, nproc))
    check_names([name, *(force or [])])
    if dry_run:
        _, version = resolve_data(params, project)
        print_plan(plan(name, params, project, version, verify, tuple(force or ()),
                        remote=True), as_json)
        return
    if join:
        from scenellm.stages.pipeline import join_run

        joined = join_run(name, params, project, wait)
        print(json.dumps(joined) if as_json else
              f"{name} {joined['fingerprint'][:16]}: wrote {joined['written']} shards "
              f"({joined['state']})")
        return
    preflight(params, name)
    prefect_for_shards(name, params, project, verify, tuple(force or ()))
    results = run_until(name, params, project, verify=verify, force=tuple(force or ()))
    if publish:
        publish_output(results[name].path, publish)
    if metrics:
        write_metrics(results[name], metrics)
    if history:
        write_history(results[name], history)
    print_stage_results(results, name, as_json)


@app.command()
@user_errors
def run(
    overrides: list[str] = SetOption,
    nproc: int = NprocOption,
    register: bool = typer.Option(True, help="Register the model in MLflow's registry."),
    verify: bool = VerifyOption,
    force: list[str] = ForceOption,
    dry_run: bool = DryRunOption,
) -> None:
    """Run the whole pipeline as the Prefect `train` flow, tracked in MLflow.

    Regenerates the default data/ if missing (checked against data.dvc), reuses every stage
    whose inputs did not change and whose output is intact, registers the model
    (champion/challenger), leaves outputs and metrics where `dvc.yaml` reads them and prints
    a summary with the metrics beside the frequency baseline.
    """
    from scenellm.cli.run import dry_run_pipeline, run_pipeline
    from scenellm.stages.registry import check_names

    check_names(force or [])
    overrides = with_nproc(overrides, nproc)
    if dry_run:
        dry_run_pipeline(overrides, verify, tuple(force or ()))
        return
    run_pipeline(overrides, register, verify, tuple(force or ()))


@app.command()
@user_errors
def ablate(
    grid: str = typer.Option("default", "--grid", help="Grid of params/ablate.yaml."),
    seeds: int = typer.Option(None, "--seeds", min=1, help="Seeds per variant (default: "
                                                           "ablate.yaml's `seeds`)."),
    overrides: list[str] = SetOption,
) -> None:
    """Run a grid of variants × seeds (the Prefect `ablate` flow) and print the table.

    Each cell is the pipeline up to evaluate with the variant's overrides and seed; shared
    stages are reused by fingerprint and finished cells are reused on a re-run. The table
    gives each row's mean over seeds and its difference from the full model with a 95 %
    paired video-bootstrap interval; it lands in .scenellm/reports/ablate-GRID/ and on the
    MLflow parent run.
    """
    from scenellm.ablation.grid import cells, load_ablate
    from scenellm.cli.run import load_flow, prefect_environment
    from scenellm.data.default import ensure_data
    from scenellm.stages.preflight import preflight

    project, params = load(None, overrides)
    config = load_ablate(project.params_dir / "ablate.yaml")
    for cell in cells(config, grid, seeds)[:: seeds or config.seeds]:  # one per variant
        preflight(load(None, [*(overrides or []), *cell.overrides])[1])
    prefect_environment(project)
    ensure_data(project, params.data)
    flow = load_flow(project, "ablate", "ablate")
    out = flow(grid=grid, seeds=seeds, overrides=overrides or [])
    typer.echo(out["markdown"])
    typer.echo(f"{out['cells']} cells ({out['reused_cells']} reused whole); table, JSON and "
               f"plot in {out['folder']}; MLflow parent run {out['parent_run_id']}")


@app.command()
@user_errors
def serve(
    cron: str = typer.Option(None, help="Cron schedule (default: orchestration.retrain_cron)."),
    force: bool = typer.Option(False, help="Retrain even when the data did not change."),
) -> None:
    """Serve the scheduled `retrain` flow from this process (Ctrl-C stops it).

    Needs a running Prefect server (`prefect server start`, PREFECT_API_URL set): the
    API a single command starts has no scheduler. For schedules without a serving process, use
    `prefect deploy --all` and `prefect worker start --pool cpu` (see README).
    """
    from scenellm.cli.run import load_flow, prefect_environment

    project, params = load(None, None)
    if not project.prefect_api_url:
        raise UserError("scenellm serve needs a Prefect server for its schedule: run "
                        "`prefect server start`, then export "
                        "PREFECT_API_URL=http://127.0.0.1:4200/api and serve again.")
    prefect_environment(project)
    retrain = load_flow(project, "retrain", "retrain")
    retrain.serve(name="retrain-served", cron=cron or params.orchestration.retrain_cron,
                  parameters={"force": force})


@app.command()
@user_errors
def info(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Show the stores in use (MLflow, Optuna, Prefect, artifacts, the DVC remote)."""
    from scenellm.data.dvc_remote import DvcRemote
    from scenellm.project import Project

    project = Project.discover()
    remote = DvcRemote.of(project)
    stores = {
        "project_root": str(project.root),
        "mlflow_tracking_uri": project.mlflow_tracking_uri,
        "optuna_storage": project.optuna_storage,
        "prefect_api_url": project.prefect_api_url,
        "artifacts_dir": str(project.artifacts),
        "dvc_remote": remote.url if remote else None,
        "shared_stage_outputs": bool(remote and remote.explicit),
    }
    if as_json:
        typer.echo(json.dumps(stores, indent=2))
    else:
        for key, value in stores.items():
            typer.echo(f"{key:22s} {value}")


app.command()(user_errors(tune_cmd.tune))
app.add_typer(tune_cmd.study_commands(user_errors), name="study")
app.add_typer(runs_cmd.runs_commands(user_errors), name="runs")
app.add_typer(config_cmd.config_commands(user_errors), name="config")
app.command()(user_errors(promote_cmd.promote))
app.command()(user_errors(audit_cmd.audit))
app.command()(user_errors(predict_cmd.predict))
app.command()(user_errors(predict_cmd.show))
reflow_app(app)
plain_type_labels()


def main() -> None:
    """Console entry point: the typer app, then a cheap interpreter exit.

    At exit CPython runs full garbage collections over every object still alive, which
    with torch, Prefect and MLflow loaded costs more than a second on 2 cores.
    ``gc.freeze()`` once the command is done moves those objects to the permanent
    generation, which the exit collections skip; atexit handlers and refcount-driven
    cleanup still run.
    """
    import gc

    from scenellm.cli.quiet import quiet_third_party

    quiet_third_party()
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
