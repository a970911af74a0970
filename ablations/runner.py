"""Run an ablation study on Ray Tune through the sweep layer's grid API, logged to MLflow.

`run_ablation(spec, opts)`:

1. **Validate before launching anything.** A ``{sweep: ...}`` base is resolved from the sweep's
   parent run (artifact ``best_config.json``) and the spec is validated again on it; the data is
   loaded and checked once (`sweeps.prepare_data`) and every variant's model is built on it; runs
   the study already holds are compared with what is asked now (a (variant, seed) trained with
   other settings is refused, naming the fields, rather than silently skipped or mixed).
2. **MLflow** (docs/ARCHITECTURE.md): experiment ``mmsa-<dataset>``; one parent run per study,
   found again by ``kind=ablation`` + ``sweep_name=<study>`` on a re-run (artifacts
   ``ablation_spec.yaml``, ``ablation_configs.json``, ``ablation_summary.json``), opened and
   ended by `sweeps.lifecycle.parent_run` as a sweep's is (FINISHED when every pair finished,
   else FAILED; KILLED on Ctrl-C; FAILED with an ``error`` tag on an exception); one child per
   (variant, seed) with the tags ``stage=ablation``, ``ablation``, ``seed``, ``reference``,
   ``method``, ``dataset``, ``sweep_name``, and the trainer's metrics (``best/test/*`` = test at
   the best validation epoch).
3. **One Ray Tune grid** of the (variant, seed) pairs with `sweeps.grid.run_grid` — the
   sweep's own trainable, resources, checkpoints, retries and MLflow child logging. Pairs whose
   child already FINISHED are not trained again. The grid's Tune experiment is
   ``<storage>/ablations/<study>/grid-<hash of the runs>``: re-running the same command restores an
   interrupted grid (trials continue from their checkpoints); adding seeds or variants starts a
   new grid holding only the pairs not yet finished.
4. **Test-time robustness** (spec ``robustness:``): the reference variant's models are evaluated on
   a corrupted test split (`mmsa_core.trainer.evaluate_checkpoint` with a
   `mmsa_core.data.Corruption`; kind ``tokens`` = the field's MMSA masking with the run's
   tokenizer's [UNK], `mmsa_core.data.masking`) and the metrics ``robust/<kind>-<modalities>/r<rate>/test/<m>``
   are logged on the reference child runs. This runs *inside the trial*, right after training,
   where the best weights are (the sweep layer's ``post_train`` hook: same node, same GPU share).
   A finished reference run that lacks some of these metrics (robustness added to the spec later,
   ``--no-robustness`` before, a failed evaluation) is evaluated afterwards in the driver from its
   last Tune checkpoint under the study directory (on a cluster that directory must be shared
   storage, as Tune requires anyway).

Imports Ray, MLflow and torch only inside functions (through `sweeps` and `mmsa_core`).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import math
import os
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ablations.spec import AblationSpec, AblationSpecError, Robustness, Trial
from sweeps.preflight import redact_uri  # noqa: E402  (stdlib only)

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from sweeps.config import GridRunResult
    from sweeps.tracking import Tracker

log = logging.getLogger("ablations")
SPEC_ARTIFACT = "ablation_spec.yaml"
CONFIGS_ARTIFACT = "ablation_configs.json"
SUMMARY_ARTIFACT = "ablation_summary.json"
STAGE = "ablation"
# RunConfig fields that say where a run ran, not what it trained: ignored when a re-run is
# compared with the runs a study already holds.
RUNTIME_FIELDS = frozenset({"device", "num_threads"})
SUMMARY_METRICS = ("mae", "corr", "acc2_non0", "f1_non0", "acc7")


class AblationRunError(RuntimeError):
    """The study cannot run as asked (data, store, resources, a clash with earlier runs)."""


@dataclass(frozen=True)
class RunOptions:
    """Where and how a study runs (none of it changes what is trained)."""

    storage_path: str = "runs/sweeps"  # the sweeps' default: one MLflow store for sweeps and ablations
    tracking_uri: str = ""  # "" -> $MLFLOW_TRACKING_URI -> sqlite:///<storage_path>/mlflow.db
    address: str = ""  # "" -> $RAY_ADDRESS -> a local Ray
    num_cpus: int = 0  # local Ray only (0 = all)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0
    max_failures: int = 2
    robustness: bool = True
    verbose: int = 1

    def resolved_tracking_uri(self) -> str:
        """Same rule as the sweeps, so one store holds both by default."""
        from sweeps.config import resolve_tracking_uri

        return resolve_tracking_uri(self.tracking_uri, self.storage_path)

    def study_dir(self, name: str) -> str:
        return os.path.join(os.path.abspath(os.path.expanduser(self.storage_path)), "ablations", name)


@dataclass
class AblationSummary:
    """What `run_ablation` did, and the study's results (mean ± std over seeds per variant)."""

    spec: AblationSpec
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    study_dir: str
    dataset: str
    to_train: int
    finished_before: int
    results: list[tuple[Trial, "GridRunResult"]] = field(default_factory=list)
    robustness_logged: dict[str, str] = field(default_factory=dict)  # run id -> "trial" | "driver" | "present"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status in ("FINISHED", "SKIPPED") for _, r in self.results)

    def per_variant(self) -> dict[str, dict[str, tuple[float, float, int]]]:
        """variant -> metric -> (mean, std, n) of ``best/test/<metric>`` over its finished seeds."""
        out: dict[str, dict[str, tuple[float, float, int]]] = {}
        for v in self.spec.variant_names():
            rows = [r.best_test for t, r in self.results
                    if t.variant == v and r.status in ("FINISHED", "SKIPPED") and r.best_test]
            out[v] = {}
            for m in SUMMARY_METRICS:
                vals = [row[m] for row in rows if m in row and math.isfinite(row[m])]
                if vals:
                    out[v][m] = (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0,
                                 len(vals))
        return out

    def format(self) -> str:
        s = self.spec
        lines = [f"\nablation {s.name!r} ({s.method} on {self.dataset}): {len(self.results)} runs = "
                 f"{len(s.variants)} variants x {len(s.seeds)} seeds; {self.finished_before} finished "
                 f"before, {self.to_train} trained now"]
        bad = [(t, r) for t, r in self.results if r.status not in ("FINISHED", "SKIPPED")]
        for t, r in bad:
            lines.append(f"  {r.status}: {t.variant} seed {t.seed}" + (f" ({(r.error or '').splitlines()[-1:]})"
                                                                       if r.error else ""))
        table = self.per_variant()
        ref = table.get(s.reference, {})
        lines.append("test metrics at the best validation epoch, mean ± std over seeds "
                     "(Δ = variant − reference):")
        lines.append(f"  {'variant':<18}{'n':>3}" + "".join(f"{m:>22}" for m in SUMMARY_METRICS[:3]))
        for v, row in table.items():
            cells = []
            for m in SUMMARY_METRICS[:3]:
                if m not in row:
                    cells.append(f"{'-':>22}")
                    continue
                mean, std, _ = row[m]
                delta = "" if v == s.reference or m not in ref else f" Δ{mean - ref[m][0]:+.3f}"
                cells.append(f"{f'{mean:.3f}±{std:.3f}{delta}':>22}")
            n = max((x[2] for x in row.values()), default=0)
            mark = " (ref)" if v == s.reference else ""
            lines.append(f"  {(v + mark):<18}{n:>3}" + "".join(cells))
        if self.robustness_logged:
            how: dict[str, int] = {}
            for v in self.robustness_logged.values():
                how[v] = how.get(v, 0) + 1
            lines.append("robustness metrics on the reference runs: " +
                         ", ".join(f"{n} {k}" for k, n in sorted(how.items())))
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"MLflow: {redact_uri(self.tracking_uri)} — experiment {self.experiment_id}, parent run "
                     f"{self.parent_run_id}; Tune: {self.study_dir}")
        from sweeps.console import footer  # the MLflow UI command, as after a sweep

        lines += footer(self.tracking_uri, self.experiment_id)
        return "\n".join(lines)


# =============================================================================================
# public entry points


def run_key(variant: str, seed: int) -> str:
    """The child run's lookup key (unique under the study's parent run)."""
    return f"{variant}-seed{seed}"


def validate_only(spec: AblationSpec, opts: RunOptions) -> str:
    """Describe the validated spec; resolve a sweep base when the tracking store exists."""
    from ablations.validate import describe

    notes = []
    if spec.base_sweep is not None:
        uri = opts.resolved_tracking_uri()
        if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):]):
            notes.append(f"base sweep {spec.base_sweep!r} not resolved: no MLflow store at {uri} "
                         "(validated against the preset instead)")
        else:
            from sweeps.tracking import Tracker

            spec = resolve_sweep_base(spec, Tracker(uri))
            notes.append(f"base resolved from the MLflow store {uri}")
    return "\n".join([describe(spec), *notes, "valid: nothing was run (--validate-only)"])


def run_ablation(spec: AblationSpec, opts: RunOptions = RunOptions()) -> AblationSummary:
    """Train every (variant, seed) of `spec` not yet finished, then log robustness metrics."""
    from sweeps.cluster import SweepValidationError, prepare_data
    from sweeps.config import GridRun, TrialResources
    from sweeps.grid import run_grid
    from sweeps.lifecycle import connect_checked, parent_run, prepare_storage
    from sweeps.state import SweepStateError
    from sweeps.tracking import Tracker

    uri = opts.resolved_tracking_uri()
    tracker = Tracker(uri)
    try:
        resources = TrialResources(cpu=opts.cpus_per_trial, gpu=opts.gpus_per_trial)
    except ValueError as exc:
        raise AblationRunError(str(exc)) from None

    # 1. everything that can fail before anything is launched or recorded -----------------------
    study_dir = opts.study_dir(spec.name)
    try:
        prepare_storage(study_dir, uri)
    except SweepStateError as exc:
        raise AblationRunError(str(exc)) from None
    if spec.base_sweep is not None:
        spec = resolve_sweep_base(spec, tracker)
    trials = spec.trials()
    data = _prepare(spec, prepare_data, SweepValidationError)
    experiment_id = tracker.experiment(data.name)
    earlier = _check_earlier_runs(spec, trials, tracker, experiment_id)
    finished = {k for k, status in earlier.items() if status == "FINISHED"}
    to_train = sum(run_key(t.variant, t.seed) not in finished for t in trials)
    if to_train:  # a re-run with nothing to train needs no Ray at all
        try:
            connect_checked(opts.address, opts.num_cpus, resources)
        except SweepValidationError as exc:
            raise AblationRunError(str(exc)) from None

    # 2. MLflow parent ------------------------------------------------------------------------------
    parent_tags = {"method": spec.method, "dataset": data.name, "sampler": "grid",
                   "config_hash": spec.fingerprint(),
                   "reference_variant": spec.reference, "variants": ",".join(spec.variant_names()),
                   "seeds": ",".join(str(s) for s in spec.seeds), "spec_source": spec.source,
                   "study_dir": study_dir}
    if spec.base_sweep is not None:
        parent_tags["base_sweep"] = spec.base_sweep
    sizes = "/".join(str(n) for n in data.sizes.values())
    note = (f"{spec.method} ablation on {data.name} (train/valid/test {sizes}): "
            f"{len(spec.variants)} variants ({', '.join(spec.variant_names())}; reference "
            f"{spec.reference}) x seeds {','.join(map(str, spec.seeds))}"
            + (f", from sweep {spec.base_sweep}" if spec.base_sweep else "") + ".")
    with parent_run(tracker, experiment_id, name=spec.name, kind="ablation", tags=parent_tags,
                    dataset=data, description=note) as parent:
        parent_run_id = parent.run_id
        tracker.client.log_text(parent_run_id, spec.to_yaml(), SPEC_ARTIFACT)
        tracker.log_json(parent_run_id, {v: c.to_dict() for v, c in spec.configs().items()}, CONFIGS_ARTIFACT)
        target = parent.target(method=spec.method, dataset=data.name)

        runs = [GridRun(key=run_key(t.variant, t.seed), config=t.config,
                        name=f"{spec.name}-{run_key(t.variant, t.seed)}",
                        tags={"stage": STAGE, "ablation": t.variant, "seed": str(t.seed),
                              "reference": str(t.reference).lower()})
                for t in trials]
        summary = AblationSummary(spec=spec, tracking_uri=uri, experiment_id=experiment_id,
                                  parent_run_id=parent_run_id, study_dir=study_dir, dataset=data.name,
                                  to_train=to_train, finished_before=len(runs) - to_train)
        print(f"ablation {spec.name!r}: {len(runs)} runs ({len(spec.variants)} variants x {len(spec.seeds)} "
              f"seeds), {len(finished)} finished before, {summary.to_train} to train", flush=True)

        hook = None
        if opts.robustness and spec.robustness is not None:
            hook = RobustnessHook.for_spec(spec)
        try:
            # 3. the grid -------------------------------------------------------------------------
            grid_name = "grid-" + _digest([(r.key, r.config.to_dict()) for r in runs])
            results = run_grid(runs, data=data, target=target, storage_path=study_dir, name=grid_name,
                               resources=resources, max_concurrent=opts.max_concurrent,
                               max_failures=opts.max_failures, post_train=hook, verbose=opts.verbose,
                               label="ablation")
            summary.results = list(zip(trials, results))
            means = {v: row["mae"][0] for v, row in summary.per_variant().items() if "mae" in row}
            if means:
                parent.describe(note + " Test mae, mean over seeds: " + ", ".join(
                    f"{v} {m:.4f}" for v, m in sorted(means.items(), key=lambda kv: kv[1])) + ".")

            # 4. robustness of reference runs the trials did not evaluate --------------------------
            if hook is not None:
                _complete_robustness(summary, hook, data, tracker)
            tracker.log_json(parent_run_id, _summary_artifact(summary), SUMMARY_ARTIFACT)
        except SweepStateError as exc:
            raise AblationRunError(str(exc)) from None
        parent.status = "FINISHED" if summary.ok else "FAILED"
        return summary


# =============================================================================================
# base configuration from a sweep


def resolve_sweep_base(spec: AblationSpec, tracker: "Tracker") -> AblationSpec:
    """`spec` on the best configuration of the sweep its base names (by name or parent run id)."""
    from ablations.spec import spec_on_base

    assert spec.base_sweep is not None
    cfg = sweep_best_config(tracker, spec.base_sweep, method=spec.method, data=spec.data, source=spec.source)
    return spec_on_base(spec, cfg)


def sweep_best_config(tracker: "Tracker", name: str, *, method: str, data: str, source: str) -> "RunConfig":
    """The best configuration (``best_config.json``) of the finished sweep `name` (name or parent run id).

    Looks in `data`'s experiment first, then in every ``mmsa-*`` experiment; refuses a sweep of
    another method, naming it (`source` says where the request came from).
    """
    from mmsa_core.config import RunConfig
    from sweeps.config import data_name
    from sweeps.tracking import experiment_name

    client = tracker.client
    wanted = experiment_name(data_name(data))
    exps = client.search_experiments()
    exps.sort(key=lambda e: (e.name != wanted, e.name))
    parent = None
    available: list[str] = []
    for exp in exps:
        if not exp.name.startswith("mmsa-"):
            continue
        runs = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'sweep'", max_results=1000)
        runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        available += [r.data.tags.get("sweep_name", r.info.run_name) for r in runs]
        hits = [r for r in runs if name in (r.info.run_id, r.data.tags.get("sweep_name"), r.info.run_name)]
        if hits:
            parent = max(hits, key=lambda r: r.info.start_time or 0)  # the newest of that name
            break
    if parent is None:
        raise AblationRunError(f"{source}: base sweep {name!r} not found at {redact_uri(tracker.tracking_uri)}; "
                               f"sweeps there: {sorted(set(available)) or '(none)'}")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        local = client.download_artifacts(parent.info.run_id, "best_config.json")
        with open(local) as f:
            best = json.load(f)
    except Exception as exc:  # noqa: BLE001 - any store error means the same to the user
        raise AblationRunError(f"{source}: sweep {name!r} (run {parent.info.run_id}) has no readable "
                               f"best_config.json ({exc}); has its search stage finished?") from None
    values = dict(best.get("config", best))
    values.pop("_run", None)
    cfg = RunConfig.from_dict(values, source=f"best_config.json of sweep {name!r}")
    if cfg.method != method:
        raise AblationSpecError(source, [f"base: sweep {name!r} tuned method {cfg.method!r}, "
                                         f"the study runs {method!r}"])
    if data_name(cfg.data) != data_name(data):
        log.warning("sweep %r was tuned on %s; the study runs on %s", name, cfg.data, data)
    return cfg


# =============================================================================================
# robustness


@dataclass(frozen=True)
class RobustnessHook:
    """`post_train` of the sweep grid: robustness metrics for the reference variant's runs.

    Picklable (Ray ships it to the trials). A run is the reference when its configuration, seed
    aside, is the reference variant's. Errors are logged and swallowed: the training result
    stands, and the driver evaluates the missing metrics from the checkpoint afterwards.
    """

    reference: str  # the reference configuration as JSON, seed left out
    corruptions: tuple[tuple[str, str, float, int], ...]  # (kind, modalities, rate, seed)

    @classmethod
    def for_spec(cls, spec: AblationSpec) -> "RobustnessHook":
        assert spec.robustness is not None
        return cls(reference=_signature(spec.config(spec.reference)),
                   corruptions=tuple((c.kind, c.modalities, c.rate, c.seed)
                                     for c in spec.robustness.corruptions()))

    def metric_names(self) -> list[str]:
        from mmsa_core.data.corruption import Corruption

        return [Robustness.metric_prefix(Corruption(*c)) + "mae" for c in self.corruptions]

    def applies_to(self, cfg: "RunConfig") -> bool:
        return _signature(cfg) == self.reference

    def evaluate(self, cfg: "RunConfig", data: "MSADataset", checkpoint_dir: str) -> dict[str, float]:
        from mmsa_core.data.corruption import MASKING_KIND, Corruption
        from mmsa_core.trainer import evaluate_checkpoint

        out: dict[str, float] = {}
        for c in self.corruptions:
            corruption = Corruption(*c)
            if corruption.kind == MASKING_KIND:  # the field's masking: the run's tokenizer's [UNK]
                from mmsa_core.data.masking import tokenizer_unk_id

                corruption = dataclasses.replace(corruption, unk_token_id=tokenizer_unk_id(cfg.text_encoder))
            metrics = evaluate_checkpoint(cfg, data, checkpoint_dir, split="test", corruption=corruption)
            prefix = Robustness.metric_prefix(corruption)
            out.update({prefix + k: float(v) for k, v in metrics.items()})
        return out

    def __call__(self, cfg: "RunConfig", data: "MSADataset", checkpoint_dir: str) -> dict[str, float]:
        if not self.applies_to(cfg):
            return {}
        try:
            return self.evaluate(cfg, data, checkpoint_dir)
        except Exception as exc:  # noqa: BLE001 - see the class docstring
            logging.getLogger("ablations").warning(
                "robustness evaluation failed in the trial (seed %s): %r; the driver retries it", cfg.seed, exc)
            return {}


def _complete_robustness(summary: AblationSummary, hook: RobustnessHook, data: "MSADataset",
                         tracker: "Tracker") -> None:
    """Evaluate, in the driver, finished reference runs that lack robustness metrics."""
    expected = hook.metric_names()
    for trial, res in summary.results:
        if not trial.reference or res.run_id is None or res.status not in ("FINISHED", "SKIPPED"):
            continue
        have = tracker.client.get_run(res.run_id).data.metrics
        if all(k in have for k in expected):
            summary.robustness_logged[res.run_id] = "present" if res.status == "SKIPPED" else "trial"
            continue
        ckpt = find_checkpoint(summary.study_dir, res.run_id)
        if ckpt is None:
            summary.notes.append(f"no checkpoint of run {res.run_id} ({trial.variant}, seed {trial.seed}) "
                                 f"under {summary.study_dir}: its robustness metrics are missing")
            continue
        metrics = hook.evaluate(trial.config, data, ckpt)
        step = res.epochs_run or int(have.get("epochs_run", 0)) or 1
        tracker.log_metrics(res.run_id, metrics, step=step)
        summary.robustness_logged[res.run_id] = "driver"


def find_checkpoint(study_dir: str, run_id: str) -> str | None:
    """The latest Tune checkpoint of an MLflow run under the study (it holds the best weights)."""
    best: tuple[int, str] | None = None
    for meta in glob.glob(os.path.join(study_dir, "grid-*", "*", "checkpoint_*", "sweep_meta.json")):
        try:
            with open(meta) as f:
                info = json.load(f)
        except (OSError, ValueError):
            continue
        if info.get("run_id") == run_id:
            epoch = int(info.get("epoch", 0))
            if best is None or epoch > best[0]:
                best = (epoch, os.path.dirname(meta))
    return best[1] if best else None


# =============================================================================================
# helpers


def _prepare(spec: AblationSpec, prepare_data: Any, error_type: type) -> "MSADataset":
    """Load and check the shared dataset; build every variant's model on it once."""
    from mmsa_core.trainer import build_model

    ref = spec.config(spec.reference)
    try:
        data = prepare_data(ref)
    except error_type as exc:
        raise AblationRunError(f"{spec.source}: {exc}") from None
    problems = []
    for name, cfg in spec.configs().items():
        if name == spec.reference:
            continue
        try:
            build_model(cfg.replace(device="cpu"), data)
        except ValueError as exc:
            problems.append(f"variant {name!r}: does not fit the data {data.name}: {exc}")
    if problems:
        raise AblationSpecError(spec.source, problems)
    return data


def _check_earlier_runs(spec: AblationSpec, trials: Sequence[Trial], tracker: "Tracker",
                        experiment_id: str) -> dict[str, str]:
    """Refuse to resume a study whose runs were trained with other settings than asked now.

    Returns run key -> MLflow status of the study's existing child runs.
    """
    from sweeps.tracking import flatten_params

    parent = _find_parent(tracker, experiment_id, spec.name)
    if parent is None:
        return {}
    by_key: dict[str, list[Any]] = {}
    for run in tracker.children(experiment_id, parent):
        by_key.setdefault(run.data.tags.get("run_key", ""), []).append(run)
    problems = []
    for t in trials:
        want = flatten_params(t.config.to_dict())
        for run in by_key.get(run_key(t.variant, t.seed), []):
            have = run.data.params
            diff = [f"{k} {have[k]} -> {v}" for k, v in want.items()
                    if k in have and have[k] != v and k not in RUNTIME_FIELDS]
            if diff:
                problems.append(f"{t.variant} seed {t.seed} (run {run.info.run_id}, {run.info.status}): "
                                + ", ".join(diff))
    if problems:
        raise AblationRunError(
            f"study {spec.name!r} already holds runs trained with other settings than asked now "
            "(a study keeps one configuration per variant and seed):\n  - " + "\n  - ".join(problems) +
            "\nstart a new study with --name NEW_NAME (or delete those runs / that study's parent run "
            "in MLflow)")
    status: dict[str, str] = {}
    for key, found in by_key.items():
        statuses = {r.info.status for r in found}
        status[key] = "FINISHED" if "FINISHED" in statuses else sorted(statuses)[0]
    return status


def _find_parent(tracker: "Tracker", experiment_id: str, name: str) -> str | None:
    runs = tracker.client.search_runs([experiment_id],
                                      filter_string=f"tags.kind = 'ablation' AND tags.sweep_name = '{name}'",
                                      max_results=100)
    runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    if not runs:
        return None
    return min(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)).info.run_id


def _signature(cfg: "RunConfig") -> str:
    d = cfg.to_dict()
    for k in ("seed", *RUNTIME_FIELDS):
        d.pop(k, None)
    return json.dumps(d, sort_keys=True)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _summary_artifact(summary: AblationSummary) -> dict[str, Any]:
    return {"study": summary.spec.name, "reference": summary.spec.reference, "seeds": list(summary.spec.seeds),
            "test": {v: {m: {"mean": x[0], "std": x[1], "n": x[2]} for m, x in row.items()}
                     for v, row in summary.per_variant().items()},
            "runs": [{"variant": t.variant, "seed": t.seed, "run_id": r.run_id, "status": r.status,
                      "best_epoch": r.best_epoch} for t, r in summary.results]}
