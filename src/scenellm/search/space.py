"""The study definition read from ``params/search.yaml``: objective, search space, fixed
overrides, sampler, pruner and heartbeat.

Every key of ``space`` and ``fixed`` is a ``section.key`` of ``params/*.yaml``; a trial's
params are the project params with ``fixed`` and then the trial's suggestions applied
(:func:`scenellm.config.load.apply_overrides`) and validated like any ``--set``. Any params
key can be searched without code changes. Samplers and pruners are named by their Optuna
class (``optuna.samplers.TPESampler``, ``optuna.pruners.MedianPruner``); the other keys of
their section are the constructor's keyword arguments.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from scenellm.config.load import apply_overrides, params_hash, validate
from scenellm.config.schema import Params
from scenellm.errors import UserError

Scalar = None | bool | int | float | str


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Categorical(_Spec):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1, description="Values to pick from.")

    def suggest(self, trial, name: str) -> Any:
        return trial.suggest_categorical(name, self.choices)

    def edges(self) -> list[Any]:
        return list(self.choices)


class IntRange(_Spec):
    type: Literal["int"]
    low: int
    high: int
    step: PositiveInt = Field(1, description="Grid step (not with log).")
    log: bool = Field(False, description="Sample uniformly in log space.")

    @model_validator(mode="after")
    def _valid(self) -> IntRange:
        from optuna.distributions import IntDistribution

        IntDistribution(self.low, self.high, log=self.log, step=self.step)
        return self

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def edges(self) -> list[Any]:
        return [self.low, self.high]


class FloatRange(_Spec):
    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(None, description="Grid step (not with log).")
    log: bool = Field(False, description="Log-uniform, e.g. for ε.")

    @model_validator(mode="after")
    def _valid(self) -> FloatRange:
        from optuna.distributions import FloatDistribution

        FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        return self

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def edges(self) -> list[Any]:
        return [self.low, self.high]


Dimension = Annotated[Categorical | IntRange | FloatRange, Field(discriminator="type")]


class Objective(_Spec):
    metric: str = Field(
        "val_predcls_R@20",
        description="A key of the finetune stage's "
        "per-epoch record; reported every epoch (pruning) and the trial's "
        "value is its best epoch.",
    )
    direction: Literal["maximize", "minimize"] = "maximize"


class Component(BaseModel):
    """An Optuna class by name; every other key is a constructor argument."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self, module, **override: Any):
        from optuna.exceptions import ExperimentalWarning

        cls = getattr(module, self.name, None)
        if not isinstance(cls, type):
            options = ", ".join(n for n in module.__all__ if not n.startswith("Base"))
            raise UserError(
                f"search.yaml: unknown {module.__name__} class '{self.name}'; "
                f"choose one of: {options}."
            )
        try:
            with warnings.catch_warnings():  # e.g. TPE's constant_liar is "experimental"
                warnings.simplefilter("ignore", ExperimentalWarning)
                return cls(**{**self.kwargs, **override})
        except (TypeError, ValueError) as exc:
            raise UserError(f"search.yaml: {self.name}: {exc}.") from exc


class Heartbeat(_Spec):
    interval: PositiveInt = Field(10, description="Seconds between a running trial's beats.")
    grace_period: PositiveInt = Field(
        60,
        description="Seconds without a beat before a "
        "running trial counts as dead (failed, then retried).",
    )
    max_retry: int | None = Field(2, ge=0, description="Retries of a dead trial; None = no limit.")

    @model_validator(mode="after")
    def _grace_exceeds_interval(self) -> Heartbeat:
        if self.grace_period <= self.interval:
            raise ValueError("grace_period must be longer than interval")
        return self


class SearchConfig(_Spec):
    objective: Objective = Objective()
    space: dict[str, Dimension] = Field(min_length=1, description="params key → range.")
    fixed: dict[str, Any] = Field(default_factory=dict, description="Overrides of every trial.")
    sampler: Component = Component(name="TPESampler")
    pruner: Component = Component(name="MedianPruner")
    heartbeat: Heartbeat = Heartbeat()

    def suggest(self, trial) -> dict[str, Any]:
        """The trial's value for every key of the space (recorded in the trial's params)."""
        return {name: dim.suggest(trial, name) for name, dim in self.space.items()}

    def trial_params(self, raw: dict[str, Any], values: dict[str, Any]) -> Params:
        """Project params (``raw``, unvalidated) with ``fixed`` and ``values`` applied."""
        return validate(apply_overrides(raw, {**self.fixed, **values}), source="trial params")

    def check(self, raw: dict[str, Any], source: str = "search.yaml") -> None:
        """Every key names a params field and every range end / choice validates."""
        for key in set(self.space) & set(self.fixed):
            raise UserError(f"{source}: '{key}' is both in space and fixed; keep one.")
        validate(apply_overrides(raw, self.fixed), source=f"{source}: fixed")
        for key, dim in self.space.items():
            for value in dim.edges():
                validate(
                    apply_overrides(raw, {**self.fixed, key: value}),
                    source=f"{source}: space.{key}={value!r}",
                )

    def digest(self, params: Params) -> str:
        """What defines the study's trials (this file and the base params, where the data
        is checked by version and orchestration does not matter); joining workers must
        agree on it."""
        payload = self.model_dump(mode="json", exclude={"heartbeat"})
        payload["sampler"] = {"name": self.sampler.name}  # seeds may differ per worker
        payload["params"] = params.model_dump(mode="json", exclude={"data", "orchestration"})
        return params_hash(payload)[:16]

    def sampler_for(self, offset: int):
        """The configured sampler; a configured ``seed`` becomes ``seed + offset`` so that
        concurrent workers and re-runs of a study do not replay the same proposals."""
        import optuna

        seed = self.sampler.kwargs.get("seed")
        extra = {} if seed is None else {"seed": int(seed) + offset}
        return self.sampler.build(optuna.samplers, **extra)

    def make_pruner(self):
        import optuna

        return self.pruner.build(optuna.pruners)


def load_search(path: Path) -> SearchConfig:
    """Read and validate a ``search.yaml`` (one-line errors naming the file and field)."""
    from scenellm.config.sources import load_validated

    return load_validated(path, SearchConfig, "search space not found; create it (see "
                          "params/search.yaml in the repository) or pass --search.")
