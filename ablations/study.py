"""One driver for every study: an ablation, a method comparison and a robustness study are data.

A study is described by a `Study` — its configurations, its grids of runs, the tags, description and
artifacts of its MLflow parent run, the test-time evaluation some of its runs get after training,
and how its results are summarised — and run by `run_study`, which does for every kind:

1. **Before anything is launched or recorded**: the storage path and the MLflow store are usable,
   the data loads and validates (once, shared by every run), every configuration builds its model
   on it, and runs the study already holds were trained with the settings asked now (a (variant,
   seed) trained otherwise is refused, naming the fields; a parent tag the study must keep —
   a robustness study's protocol — likewise).
2. **MLflow**: experiment ``mmsa-<dataset>``; one parent run per study, found again by ``kind`` +
   ``sweep_name`` on a re-run (`sweeps.lifecycle.parent_run`: FINISHED when every run finished,
   else FAILED; KILLED on Ctrl-C; FAILED with an ``error`` tag on an exception), with the study's
   artifacts; one child per run (`sweeps.grid.run_grid`).
3. **The grids**, in order, each one resumable Ray Tune experiment under
   ``<storage>/<folder>/<study name>/<grid name>``; runs whose child already FINISHED are not
   trained again. A grid may train on a transformed copy of the data (the retrain protocol's
   masked data).
4. **Test-time evaluation** (`ablations.evaluation.TestTimeEvaluation`): inside the trials, then —
   for finished runs that lack its metrics (added later, a failed evaluation) — in the driver from
   the run's last checkpoint under the study directory (on a cluster that directory is shared
   storage, as Tune requires anyway).
5. **Summary**: the study's own (`Study.summarize`) becomes an artifact, the parent's description
   and its headline metrics.

Each kind's module holds only what is its own: `ablations.runner` (specs), `ablations.compare`,
`ablations.robustness`. Imports Ray, MLflow and torch only inside functions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from mmsa_core.config import PLACEMENT_FIELDS
from mmsa_core.record_names import EPOCHS_RUN, Tag
from sweeps import storage  # stdlib at import
from sweeps.preflight import redact_uri  # stdlib only

if TYPE_CHECKING:
    from ablations.evaluation import TestTimeEvaluation
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from sweeps.config import GridRun, GridRunResult
    from sweeps.runtime_options import RuntimeOptions
    from sweeps.tracking import Tracker


class StudyError(ValueError):
    """The study cannot run as asked (data, store, resources, a clash with earlier runs)."""


def runs_digest(obj: Any) -> str:
    """12 hex of the SHA-256 of `obj` as sorted JSON: grid names are ``grid-<digest of their runs>``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class StudyGrid:
    """One Tune experiment of a study: its runs, under a name that must stay stable (resume)."""

    name: str
    runs: tuple["GridRun", ...]
    label: str = ""  # the console's stage name (default: the study's kind)
    data: Callable[["MSADataset"], "MSADataset"] | None = None  # a transformed copy to train on


@dataclass(frozen=True)
class StudySummary:
    """What a finished study says of itself (on its parent run)."""

    artifact_name: str
    artifact: Mapping[str, Any]
    description: str = ""  # appended to the parent's description
    metrics: Mapping[str, float] = field(default_factory=dict)  # the parent's headline metrics


@dataclass(frozen=True)
class Study:
    """A study as data (see the module docstring)."""

    kind: str  # the parent's ``kind`` tag: ablation | comparison | robustness
    name: str
    folder: str  # its directory under the storage path: ablations | comparisons | robustness
    source: str  # what asked for it (a spec file, a command line): named in errors
    configs: Mapping[str, "RunConfig"]  # every distinct configuration; the first decides the data
    grids: tuple[StudyGrid, ...]
    parent_tags: Mapping[str, str]
    child_tags: Mapping[str, str] = field(default_factory=dict)  # on every child (e.g. ``method``)
    description: str = ""  # the parent's; ``{data}`` and ``{sizes}`` are filled in from the loaded data
    artifacts: Mapping[str, Any] = field(default_factory=dict)  # file -> JSON-able dict, or text
    evaluation: "TestTimeEvaluation | None" = None
    resume_tags: Mapping[str, str] = field(default_factory=dict)  # parent tags a resume must match
    summarize: Callable[["StudyOutcome"], StudySummary] | None = None

    def runs(self) -> list["GridRun"]:
        return [r for g in self.grids for r in g.runs]


@dataclass
class StudyOutcome:
    """What `run_study` did: every run's result, and where the study lives."""

    study: Study
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    directory: str
    dataset: str
    finished_before: int
    to_train: int
    results: list[tuple["GridRun", "GridRunResult"]] = field(default_factory=list)
    evaluated: dict[str, str] = field(default_factory=dict)  # run id -> "trial" | "driver" | "present"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status in ("FINISHED", "SKIPPED") for _, r in self.results) and not self.missing_evaluations

    @property
    def missing_evaluations(self) -> int:
        return sum(v == "missing" for v in self.evaluated.values())

    def where(self) -> str:
        """The closing lines: the MLflow store and parent, the Tune directory, the UI command."""
        from sweeps.console import footer

        lines = [f"MLflow: {redact_uri(self.tracking_uri)} — experiment {self.experiment_id}, parent run "
                 f"{self.parent_run_id}; Tune: {self.directory}"]
        return "\n".join(lines + footer(self.tracking_uri, self.experiment_id))


# =============================================================================================
# running


def run_study(study: Study, runtime: "RuntimeOptions") -> StudyOutcome:
    """Train every run of `study` not yet finished, evaluate, summarise (see the module docstring)."""
    from sweeps.cluster import SweepValidationError
    from sweeps.grid import grid_resources, run_grid
    from sweeps.lifecycle import connect_checked, parent_run, prepare_storage
    from sweeps.state import SweepStateError
    from sweeps.tracking import Tracker

    uri = runtime.resolved_tracking_uri()
    tracker = Tracker(uri)
    directory = storage.join(runtime.storage_root, study.folder, study.name)

    # 1. everything that can fail before anything is launched or recorded ------------------------
    from sweeps.runtime_options import placement_problem

    placement = {placement_problem(cfg.device, runtime.gpus_per_trial) for cfg in study.configs.values()} - {None}
    if placement:
        raise StudyError(f"{study.source}: " + "; ".join(sorted(p for p in placement if p)))
    try:
        prepare_storage(directory, uri)
    except SweepStateError as exc:
        raise StudyError(str(exc)) from None
    data = load_study_data(study)
    experiment_id = tracker.experiment(data.name)
    statuses = check_earlier_runs(study, tracker, experiment_id)
    runs = study.runs()
    to_train = sum(statuses.get(r.key) != "FINISHED" for r in runs)
    if to_train:  # a re-run with nothing to train needs no Ray at all
        try:
            connect_checked(runtime.resolved_address(), runtime.num_cpus,
                            grid_resources(runtime, runs), runtime.num_gpus)
        except SweepValidationError as exc:
            raise StudyError(str(exc)) from None

    # 2. MLflow parent ------------------------------------------------------------------------------
    tags = {Tag.DATASET: data.name, "sampler": "grid", "study_dir": directory, **study.parent_tags}
    description = study.description.format(data=data.name, sizes="/".join(str(n) for n in data.sizes.values()))
    print(f"{study.kind} {study.name!r}: {len(runs)} runs, {len(runs) - to_train} finished before, "
          f"{to_train} to train", flush=True)
    with parent_run(tracker, experiment_id, name=study.name, kind=study.kind, tags=tags, dataset=data,
                    description=description) as parent:
        for artifact, content in study.artifacts.items():
            if isinstance(content, str):
                tracker.client.log_text(parent.run_id, content, artifact)
            else:
                tracker.log_json(parent.run_id, content, artifact)
        target = parent.target(**study.child_tags)
        outcome = StudyOutcome(study=study, tracking_uri=uri, experiment_id=experiment_id,
                               parent_run_id=parent.run_id, directory=directory, dataset=data.name,
                               finished_before=len(runs) - to_train, to_train=to_train)
        # 3. the grids, 4. test-time evaluation -----------------------------------------------------
        try:
            for grid in study.grids:
                grid_data = data if grid.data is None else grid.data(data)
                results = run_grid(list(grid.runs), data=grid_data, target=target, storage_path=directory,
                                   name=grid.name, runtime=runtime, evaluation=study.evaluation,
                                   label=grid.label or study.kind)
                outcome.results += list(zip(grid.runs, results))
                if study.evaluation is not None:
                    complete_evaluations(outcome, list(zip(grid.runs, results)), study.evaluation, grid_data, tracker)
        except SweepStateError as exc:
            raise StudyError(str(exc)) from None
        # 5. summary ----------------------------------------------------------------------------------
        if study.summarize is not None:
            summary = study.summarize(outcome)
            tracker.log_json(parent.run_id, dict(summary.artifact), summary.artifact_name)
            if summary.description:
                parent.describe(f"{description} {summary.description}".strip())
            if summary.metrics:
                tracker.log_metrics(parent.run_id, dict(summary.metrics), step=0)
        parent.status = "FINISHED" if outcome.ok else "FAILED"
    if outcome.ok and runtime.keep_checkpoints == "none":  # every evaluation is logged by now
        from sweeps.checkpoints import drop_checkpoints

        drop_checkpoints(directory)
    return outcome


def load_study_data(study: Study) -> "MSADataset":
    """Load and check the shared dataset once; build every configuration's model on it."""
    from mmsa_core.trainer import build_model
    from sweeps.cluster import SweepValidationError, prepare_data

    configs = list(study.configs.items())
    try:
        data = prepare_data(configs[0][1])
    except SweepValidationError as exc:
        raise StudyError(f"{study.source}: {exc}") from None
    problems = []
    for name, cfg in configs[1:]:
        try:
            build_model(cfg.replace(device="cpu"), data)
        except ValueError as exc:
            problems.append(f"{name}: does not fit the data {data.name}: {exc}")
    if problems:
        raise StudyError(f"{study.source}:\n  - " + "\n  - ".join(problems))
    return data


def check_earlier_runs(study: Study, tracker: "Tracker", experiment_id: str) -> dict[str, str]:
    """Refuse to resume a study whose runs were trained with other settings than asked now, or
    whose parent holds another value of a `Study.resume_tags` tag. Returns run key -> the best MLflow
    status of the study's children of that key (FINISHED if any finished)."""
    from sweeps.tracking import flatten_params

    parent = tracker.find_parent(experiment_id, kind=study.kind, name=study.name)
    if parent is None:
        return {}
    for tag, value in study.resume_tags.items():
        had = parent.data.tags.get(tag)
        if had and had != value:
            raise StudyError(f"{study.kind} study {study.name!r} was started with {tag}={had}; it cannot be "
                             f"resumed with {tag}={value} (use another --name)")
    by_key: dict[str, list[Any]] = {}
    for run in tracker.children(experiment_id, parent.info.run_id):
        by_key.setdefault(run.data.tags.get(Tag.RUN_KEY, ""), []).append(run)
    problems = []
    for r in study.runs():
        want = flatten_params(r.config.to_dict())
        for run in by_key.get(r.key, []):
            have = run.data.params
            diff = [f"{k} {have[k]} -> {v}" for k, v in want.items()
                    if k in have and have[k] != v and k not in PLACEMENT_FIELDS]
            if diff:
                problems.append(f"{r.key} (run {run.info.run_id}, {run.info.status}): " + ", ".join(diff))
    if problems:
        raise StudyError(
            f"{study.kind} study {study.name!r} already holds runs trained with other settings than asked now "
            "(a study keeps one configuration per run):\n  - " + "\n  - ".join(problems) +
            "\nstart a new study with --name NEW_NAME (or delete those runs / that study's parent run in MLflow)")
    status: dict[str, str] = {}
    for key, found in by_key.items():
        statuses = {r.info.status for r in found}
        status[key] = "FINISHED" if "FINISHED" in statuses else sorted(statuses)[0]
    return status


def complete_evaluations(outcome: StudyOutcome, results: Sequence[tuple["GridRun", "GridRunResult"]],
                         evaluation: "TestTimeEvaluation", data: "MSADataset", tracker: "Tracker") -> None:
    """Evaluate, in the driver, finished runs the evaluation applies to that lack its metrics."""
    expected = evaluation.metric_names()
    for run, res in results:
        if not evaluation.applies_to(run.key) or res.run_id is None or res.status not in ("FINISHED", "SKIPPED"):
            continue
        have = tracker.client.get_run(res.run_id).data.metrics
        if all(k in have for k in expected):
            outcome.evaluated[res.run_id] = "present" if res.status == "SKIPPED" else "trial"
            continue
        from sweeps.checkpoints import find_run_checkpoint

        ckpt = find_run_checkpoint(outcome.directory, res.run_id)
        if ckpt is None:
            outcome.notes.append(f"no checkpoint of run {res.run_id} ({run.key}) under {outcome.directory}: "
                                 "its test-time evaluation is missing")
            outcome.evaluated[res.run_id] = "missing"
            continue
        with storage.local_copy(ckpt) as ckpt_dir:
            metrics = evaluation.evaluate(run.config, data, ckpt_dir)
        step = res.epochs_run or int(have.get(EPOCHS_RUN, 0)) or 1
        tracker.log_metrics(res.run_id, metrics, step=step)
        outcome.evaluated[res.run_id] = "driver"


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample std, n) of the finite values (std 0 for one value)."""
    import math
    import statistics

    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return (math.nan, math.nan, 0)
    return (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals))
