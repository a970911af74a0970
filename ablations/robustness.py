"""Missing-modality robustness of any registered method, by the field's protocol (MMSA masking).

    python ablations/robustness.py --methods hscl,mmckd                      # evaluate at every rate
    python ablations/robustness.py --methods hscl --protocol retrain --seeds 111,1111,11111
    python ablations/robustness.py --methods hscl,mmckd --smoke --rates 0,0.5,1
    python ablations/robustness.py --methods hscl --base-sweep hscl=hscl-mosi --data data/mosi.pkl

Masking follows /work/shared/spec/robustness.md through `mmsa_core.data.masking` (token / frame
dropping with ``keep = U(0,1) > r``, seeds (111, 1111, 11111) for (T, A, V), nested masks).
Two protocols (``--protocol``):

- ``evaluate`` (default, LNLN's test protocol): one Ray Tune grid over (method, seed) trains on
  complete data and selects on complete validation; inside each trial, right after training, the
  best-validation weights are evaluated on masked TEST copies at every rate
  (``robust/tokens-tav/r<rate:.2f>/test/<m>``) and on whole-modality-drop copies
  (``robust/absent-<a|v|av>/test/<m>``). The evaluation only reads the checkpoint: training and
  selection never see a masked array. A FINISHED run that lacks some of these metrics (rates added
  later, a failed evaluation) is evaluated afterwards in the driver from its last Tune checkpoint.
- ``retrain`` (TFR-Net / EMT-DLFR): for each rate one Ray Tune grid over (method, seed) on the
  dataset masked at that rate in train, valid and test alike (`masking.masked_dataset`, built in
  the driver, one shared dataset per rate); each (method, rate, seed) is a child run tagged
  ``rate=<r:.2f>`` whose ``best/test/<m>`` is the masked test at the masked-validation best epoch.

MLflow: one parent run per study (``kind=robustness``, run name = study name, tags ``protocol``,
``methods``, ``rates``, ``seeds``, ``mask_seeds``), children tagged ``stage=robustness``,
``protocol``, ``method``, ``seed`` (and ``rate`` for retrain). Re-running the same command resumes
(children that FINISHED are not trained again). Report: ``python -m reports --robustness NAME``.

Imports Ray, MLflow and torch only inside functions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if __package__ in (None, ""):  # run as a file: import from the repository root
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from sweeps.preflight import redact_uri  # noqa: E402  (stdlib only)

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from sweeps.config import GridRunResult

log = logging.getLogger("ablations")
PROTOCOLS = ("evaluate", "retrain")
KIND = "robustness"
STAGE = "robustness"
MASK_MODALITIES = "tav"
ABSENT = ("a", "v", "av")
DEFAULT_STORAGE = "runs/sweeps"
DEFAULT_SEEDS = (111, 1111, 11111)  # the TFR-Net / EMT-DLFR release seeds
DATA_FIELDS = ("data", "text_encoder", "max_text_len", "synthetic_train", "synthetic_valid", "synthetic_test")
RUNTIME_FIELDS = frozenset({"device", "num_threads"})
SUMMARY_ARTIFACT = "robustness_summary.json"


class RobustnessError(ValueError):
    """The study cannot run as asked; the message names the flag / field."""


def tokens_prefix(rate: float, modalities: str = MASK_MODALITIES) -> str:
    """``robust/tokens-tav/r0.30/test/``: token / frame masking of the test split at `rate`."""
    return f"robust/tokens-{modalities}/r{rate:.2f}/test/"


def absent_prefix(modalities: str) -> str:
    """``robust/absent-av/test/``: the test split with those streams absent."""
    return f"robust/absent-{modalities}/test/"


# =============================================================================================
# the request


@dataclass(frozen=True)
class Study:
    """A validated robustness study: what is trained and evaluated."""

    name: str
    protocol: str
    methods: tuple[str, ...]
    rates: tuple[float, ...]
    seeds: tuple[int, ...]
    configs: Mapping[str, "RunConfig"]  # method -> base configuration (seed set per run)
    mask_seeds: tuple[int, int, int] = (111, 1111, 11111)
    base_sweeps: Mapping[str, str] = field(default_factory=dict)

    def config(self, method: str, seed: int) -> "RunConfig":
        return self.configs[method].replace(seed=seed)

    def fingerprint(self) -> str:
        return _digest({"protocol": self.protocol, "rates": self.rates, "seeds": self.seeds,
                        "mask_seeds": self.mask_seeds,
                        "configs": {m: _signature(c) for m, c in self.configs.items()}})


def _sweep_base(method: str, sweep: str, data: str, tracker: Any) -> "RunConfig":
    """The best configuration of a finished sweep, resolved exactly as an ablation's
    ``base: {sweep: ...}`` is (`ablations.runner.sweep_best_config`)."""
    from ablations.runner import sweep_best_config

    return sweep_best_config(tracker, sweep, method=method, data=data, source=f"--base-sweep {method}={sweep}")


def build_study(*, methods: Sequence[str], protocol: str = "evaluate", rates: Sequence[float] | None = None,
                seeds: Sequence[int] = DEFAULT_SEEDS, data: str | None = None, preset: str = "mosi",
                overrides: Mapping[str, Any] | None = None, base_sweeps: Mapping[str, str] | None = None,
                name: str | None = None, mask_seeds: Sequence[int] = (111, 1111, 11111),
                tracker: Any = None) -> Study:
    """Validate everything (every problem at once) and build each method's configuration."""
    from mmsa_core.config import RunConfig
    from mmsa_core.data.masking import RATES, check_rate
    from mmsa_core.methods import method_names

    problems: list[str] = []
    known = list(method_names())
    methods = [m.strip() for m in methods if m.strip()]
    if not methods:
        problems.append("--methods: give at least one method")
    for m in methods:
        if m not in known:
            problems.append(f"--methods: unknown method {m!r}; registered methods: {known}")
    if len(set(methods)) != len(methods):
        problems.append(f"--methods: {methods} names a method twice")
    if protocol not in PROTOCOLS:
        problems.append(f"--protocol {protocol!r}: choose one of {list(PROTOCOLS)}")
    checked: list[float] = []
    for r in (RATES if rates is None else rates):
        try:
            checked.append(round(check_rate(r), 2))
        except ValueError as exc:
            problems.append(f"--rates: {exc}")
    if len(set(checked)) != len(checked):
        problems.append(f"--rates: {list(rates or ())} repeats a rate (rates are compared to 2 decimals)")
    if not checked and not any(p.startswith("--rates") for p in problems):
        problems.append("--rates: give at least one rate")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(isinstance(s, bool) or not isinstance(s, int) or s < 0
                                                         for s in seeds):
        problems.append(f"--seeds {seeds}: expected distinct non-negative integers")
    try:
        mask_seeds_t = tuple(int(s) for s in mask_seeds)
        if len(mask_seeds_t) != 3:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"--mask-seeds {mask_seeds!r}: expected three integers (T, A, V)")
        mask_seeds_t = (111, 1111, 11111)
    base_sweeps = dict(base_sweeps or {})
    for m in base_sweeps:
        if m not in methods:
            problems.append(f"--base-sweep {m}=...: {m!r} is not among --methods {methods}")
    if problems:
        raise RobustnessError("robustness study: " + "; ".join(problems) if len(problems) == 1 else
                              "robustness study:\n  - " + "\n  - ".join(problems))

    overrides = dict(overrides or {})
    configs: dict[str, RunConfig] = {}
    for m in methods:
        own = {k: v for k, v in overrides.items()
               if "." not in k or k.split(".", 1)[0] == m or k.split(".", 1)[0] not in known}
        try:
            if m in base_sweeps:
                if tracker is None:
                    raise RobustnessError(f"--base-sweep {m}={base_sweeps[m]}: no MLflow store to read it from")
                base = _sweep_base(m, base_sweeps[m], data or RunConfig.paper(m, preset).data, tracker)
            else:
                base = RunConfig.paper(m, preset)
            if data is not None:
                own["data"] = data
            cfg = RunConfig.from_dict(own, base=base, source=f"--set ({m})") if own else base
        except RobustnessError:
            raise
        except ValueError as exc:
            problems.append(f"{m}: {exc}")
            continue
        configs[m] = cfg
    if len(configs) > 1:  # one shared dataset (and one masked copy per rate) for every method
        first = next(iter(configs.values()))
        for m, c in configs.items():
            diff = [f"{k} {getattr(first, k)!r} vs {getattr(c, k)!r}" for k in DATA_FIELDS
                    if getattr(c, k) != getattr(first, k)]
            if diff:
                problems.append(f"{m}: loads other data than {next(iter(configs))} ({', '.join(diff)}); "
                                "set them equal with --set / --data")
    if problems:
        raise RobustnessError("robustness study:\n  - " + "\n  - ".join(problems))
    if name is None:
        name = f"robustness-{protocol}-{'-'.join(methods)}"
    return Study(name=name, protocol=protocol, methods=tuple(methods), rates=tuple(sorted(checked)),
                 seeds=tuple(seeds), configs=configs, mask_seeds=mask_seeds_t,  # type: ignore[arg-type]
                 base_sweeps=base_sweeps)


# =============================================================================================
# the masked evaluation (evaluate protocol)


@dataclass(frozen=True)
class MaskedEvaluation:
    """`post_train` of the grid: the best-validation weights on masked / absent TEST copies.

    Picklable (Ray ships it to the trials). Reads the checkpoint and the test split only; the
    train and valid arrays, the training and the selection are never touched. Errors are logged
    and swallowed in the trial (the driver evaluates what is missing afterwards).
    """

    rates: tuple[float, ...]
    mask_seeds: tuple[int, int, int] = (111, 1111, 11111)
    unk_id: int = 100
    absent: tuple[str, ...] = ABSENT

    def metric_names(self, metric: str = "mae") -> list[str]:
        return ([tokens_prefix(r) + metric for r in self.rates]
                + [absent_prefix(a) + metric for a in self.absent])

    def evaluate(self, cfg: "RunConfig", data: "MSADataset", checkpoint_dir: str) -> dict[str, float]:
        from mmsa_core.data.masking import absent_split, masked_split, uniform_draws
        from mmsa_core.trainer import evaluate, load_best_runtime, resolve_device, seed_everything

        device = resolve_device(cfg.device)
        _, runtime = load_best_runtime(checkpoint_dir, data, device=str(device))
        test = data.splits["test"]
        draws = uniform_draws(test, seeds=self.mask_seeds)
        out: dict[str, float] = {}
        copies = [(tokens_prefix(r), masked_split(test, r, seeds=self.mask_seeds, unk_id=self.unk_id, draws=draws))
                  for r in self.rates]
        copies += [(absent_prefix(a), absent_split(test, a)) for a in self.absent]
        for prefix, arrays in copies:
            seed_everything(cfg.seed, cfg.deterministic)  # as evaluate_checkpoint does
            out.update({prefix + k: float(v) for k, v in evaluate(runtime, arrays, cfg, device).items()})
        return out

    def __call__(self, cfg: "RunConfig", data: "MSADataset", checkpoint_dir: str) -> dict[str, float]:
        try:
            return self.evaluate(cfg, data, checkpoint_dir)
        except Exception as exc:  # noqa: BLE001 - see the class docstring
            logging.getLogger("ablations").warning(
                "masked evaluation failed in the trial (%s seed %s): %r; the driver retries it",
                cfg.method, cfg.seed, exc)
            return {}


# =============================================================================================
# running


@dataclass
class StudyResult:
    study: Study
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    study_dir: str
    dataset: str
    results: list[tuple[dict[str, Any], "GridRunResult"]] = field(default_factory=list)  # (tags, result)
    evaluated_in_driver: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status in ("FINISHED", "SKIPPED") for _, r in self.results)

    def format(self) -> str:
        s = self.study
        bad = [(t, r) for t, r in self.results if r.status not in ("FINISHED", "SKIPPED")]
        lines = [f"\nrobustness {s.name!r} ({s.protocol} protocol, {', '.join(s.methods)} on {self.dataset}): "
                 f"{len(self.results)} runs, {sum(r.status == 'SKIPPED' for _, r in self.results)} finished before"]
        lines += [f"  {r.status}: {t}" for t, r in bad]
        if self.evaluated_in_driver:
            lines.append(f"masked evaluation of {self.evaluated_in_driver} run(s) done in the driver")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"MLflow: {redact_uri(self.tracking_uri)} — experiment {self.experiment_id}, parent run "
                     f"{self.parent_run_id}; Tune: {self.study_dir}")
        lines.append(f"report: python -m reports --robustness {s.name} --tracking-uri {redact_uri(self.tracking_uri)}")
        return "\n".join(lines)


def run_key(method: str, seed: int, rate: float | None = None) -> str:
    return f"{method}-seed{seed}" if rate is None else f"{method}-r{rate:.2f}-seed{seed}"


def run_study(study: Study, opts: Any) -> StudyResult:
    """Run `study` (`opts`: `ablations.runner.RunOptions`, where and how it runs)."""
    from ablations.runner import AblationRunError, find_checkpoint
    from mmsa_core.data.masking import masked_dataset, tokenizer_unk_id
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
    study_dir = os.path.join(os.path.abspath(os.path.expanduser(opts.storage_path)), "robustness", study.name)
    try:
        prepare_storage(study_dir, uri)
    except SweepStateError as exc:
        raise AblationRunError(str(exc)) from None
    first = study.configs[study.methods[0]]
    try:
        data = prepare_data(first)
    except SweepValidationError as exc:
        raise AblationRunError(str(exc)) from None
    from mmsa_core.trainer import build_model

    for m in study.methods[1:]:
        try:
            build_model(study.configs[m].replace(device="cpu"), data)
        except ValueError as exc:
            raise AblationRunError(f"{m}: does not fit the data {data.name}: {exc}") from None
    unk = tokenizer_unk_id(first.text_encoder)
    experiment_id = tracker.experiment(data.name)

    # runs, by grid -----------------------------------------------------------------------------
    grids: list[tuple[float | None, list[Any]]] = []
    if study.protocol == "evaluate":
        grids.append((None, [GridRun(key=run_key(m, s), config=study.config(m, s), name=f"{study.name}-{run_key(m, s)}",
                                     tags={"stage": STAGE, "protocol": "evaluate"})
                             for s in study.seeds for m in study.methods]))  # seed-major, as compare.py
    else:
        for r in study.rates:
            grids.append((r, [GridRun(key=run_key(m, s, r), config=study.config(m, s),
                                      name=f"{study.name}-{run_key(m, s, r)}",
                                      tags={"stage": STAGE, "protocol": "retrain", "rate": f"{r:.2f}"})
                              for s in study.seeds for m in study.methods]))
    all_runs = [run for _, g in grids for run in g]
    _check_earlier_runs(study, all_runs, tracker, experiment_id)
    finished = {k for k, st in _child_status(tracker, experiment_id, study.name).items() if st == "FINISHED"}
    to_train = sum(r.key not in finished for r in all_runs)
    if to_train:
        try:
            connect_checked(opts.address, opts.num_cpus, resources)
        except SweepValidationError as exc:
            raise AblationRunError(str(exc)) from None

    tags = {"method": ",".join(study.methods), "methods": ",".join(study.methods), "dataset": data.name,
            "protocol": study.protocol, "rates": ",".join(f"{r:.2f}" for r in study.rates),
            "seeds": ",".join(map(str, study.seeds)), "mask_seeds": ",".join(map(str, study.mask_seeds)),
            "sampler": "grid", "config_hash": study.fingerprint(), "study_dir": study_dir}
    if study.base_sweeps:
        tags["base_sweep"] = ",".join(f"{m}={s}" for m, s in study.base_sweeps.items())
    hook = MaskedEvaluation(rates=study.rates, mask_seeds=study.mask_seeds, unk_id=unk) \
        if study.protocol == "evaluate" else None
    print(f"robustness {study.name!r} ({study.protocol}): {len(all_runs)} runs, {len(all_runs) - to_train} "
          f"finished before, {to_train} to train", flush=True)
    with parent_run(tracker, experiment_id, name=study.name, kind=KIND, tags=tags) as parent:
        target = parent.target(dataset=data.name)
        tracker.log_json(parent.run_id, {m: c.to_dict() for m, c in study.configs.items()}, "robustness_configs.json")
        result = StudyResult(study=study, tracking_uri=uri, experiment_id=experiment_id,
                             parent_run_id=parent.run_id, study_dir=study_dir, dataset=data.name)
        try:
            for rate, runs in grids:
                grid_data = data if rate is None else masked_dataset(data, rate, seeds=study.mask_seeds, unk_id=unk)
                label = "grid-" + ("" if rate is None else f"r{rate:.2f}-")
                name = label + _digest([(r.key, r.config.to_dict(), study.mask_seeds) for r in runs])
                out = run_grid(runs, data=grid_data, target=target, storage_path=study_dir, name=name,
                               resources=resources, max_concurrent=opts.max_concurrent,
                               max_failures=opts.max_failures, post_train=hook, verbose=opts.verbose)
                result.results += [({"method": r.config.method, "seed": r.config.seed, "rate": rate}, res)
                                   for r, res in zip(runs, out)]
        except SweepStateError as exc:
            raise AblationRunError(str(exc)) from None
        if hook is not None:  # finished runs that lack masked metrics: evaluate from the checkpoint
            expected = hook.metric_names()
            for t, res in result.results:
                if res.run_id is None or res.status not in ("FINISHED", "SKIPPED"):
                    continue
                have = tracker.client.get_run(res.run_id).data.metrics
                if all(k in have for k in expected):
                    continue
                ckpt = find_checkpoint(study_dir, res.run_id)
                if ckpt is None:
                    result.notes.append(f"no checkpoint of run {res.run_id} ({t['method']} seed {t['seed']}) "
                                        f"under {study_dir}: its masked metrics are missing")
                    parent.status = "FAILED"
                    continue
                cfg = study.config(t["method"], t["seed"])
                tracker.log_metrics(res.run_id, hook.evaluate(cfg, data, ckpt),
                                    step=res.epochs_run or int(have.get("epochs_run", 0)) or 1)
                result.evaluated_in_driver += 1
        tracker.log_json(parent.run_id, {"study": study.name, "protocol": study.protocol,
                                         "runs": [{**t, "run_id": r.run_id, "status": r.status,
                                                   "best_epoch": r.best_epoch} for t, r in result.results]},
                         SUMMARY_ARTIFACT)
        if not result.ok:
            parent.status = "FAILED"
        return result


def _child_status(tracker: Any, experiment_id: str, name: str) -> dict[str, str]:
    parent = _find_parent(tracker, experiment_id, name)
    if parent is None:
        return {}
    out: dict[str, str] = {}
    for run in tracker.children(experiment_id, parent.info.run_id):
        key = run.data.tags.get("run_key", "")
        out[key] = "FINISHED" if run.info.status == "FINISHED" or out.get(key) == "FINISHED" else run.info.status
    return out


def _find_parent(tracker: Any, experiment_id: str, name: str) -> Any:
    runs = tracker.client.search_runs([experiment_id],
                                      filter_string=f"tags.kind = '{KIND}' AND tags.sweep_name = '{name}'",
                                      max_results=100)
    runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return min(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)) if runs else None


def _check_earlier_runs(study: Study, runs: Sequence[Any], tracker: Any, experiment_id: str) -> None:
    """Refuse to resume a study under another protocol, or whose runs were trained otherwise."""
    from ablations.runner import AblationRunError
    from sweeps.tracking import flatten_params

    parent = _find_parent(tracker, experiment_id, study.name)
    if parent is None:
        return
    had = parent.data.tags.get("protocol")
    if had and had != study.protocol:
        raise AblationRunError(f"study {study.name!r} is a {had!r} study; it cannot be resumed with --protocol "
                               f"{study.protocol} (use another --name)")
    by_key: dict[str, list[Any]] = {}
    for run in tracker.children(experiment_id, parent.info.run_id):
        by_key.setdefault(run.data.tags.get("run_key", ""), []).append(run)
    problems = []
    for r in runs:
        want = flatten_params(r.config.to_dict())
        for run in by_key.get(r.key, []):
            diff = [f"{k} {run.data.params[k]} -> {v}" for k, v in want.items()
                    if k in run.data.params and run.data.params[k] != v and k not in RUNTIME_FIELDS]
            if diff:
                problems.append(f"{r.key} (run {run.info.run_id}): " + ", ".join(diff))
    if problems:
        raise AblationRunError(f"study {study.name!r} already holds runs trained with other settings:\n  - "
                               + "\n  - ".join(problems) + "\nstart a new study with --name NEW_NAME")


def _signature(cfg: "RunConfig") -> dict[str, Any]:
    d = cfg.to_dict()
    for k in ("seed", *RUNTIME_FIELDS):
        d.pop(k, None)
    return d


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


# =============================================================================================
# command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python ablations/robustness.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what runs")
    g.add_argument("--methods", required=True, metavar="M1,M2,...", help="registered methods (comma-separated)")
    g.add_argument("--protocol", default="evaluate", help="evaluate (train once, test at every rate; default) "
                                                          "or retrain (train, select and test at each rate)")
    g.add_argument("--rates", default=None, metavar="R1,R2,...", help="missing rates in [0, 1] (default: 0.0, 0.1, ..., 1.0)")
    g.add_argument("--seeds", default=None, metavar="S1,S2,...", help="training seeds (default: 111,1111,11111)")
    g.add_argument("--mask-seeds", default="111,1111,11111", metavar="T,A,V",
                   help="seeds of the masks, one per modality (default: %(default)s, MMSA's)")
    g.add_argument("--data", default=None, help="synthetic-mosi, synthetic-mosei, an MMSA pickle or a converted directory")
    g.add_argument("--preset", default="mosi", help="paper preset of each method: mosi | mosei (default: %(default)s)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a RunConfig field for every method (repeatable); <method>.<field> only for that method")
    g.add_argument("--base-sweep", action="append", default=[], metavar="METHOD=SWEEP",
                   help="start METHOD from the best configuration of a finished sweep (repeatable; a bare "
                        "SWEEP with a single method)")
    g.add_argument("--name", default=None, help="study name (default: robustness-<protocol>-<methods>)")
    g.add_argument("--smoke", action="store_true", help="tiny encoder, small synthetic splits, 2 epochs")
    g = p.add_argument_group("where and how it runs")
    g.add_argument("--storage-path", default=DEFAULT_STORAGE,
                   help="Tune state in <path>/robustness/<name> (default: %(default)s)")
    g.add_argument("--tracking-uri", default=None,
                   help="MLflow URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<storage-path>/mlflow.db)")
    g.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    g.add_argument("--num-cpus", type=int, default=0, help="CPUs of a local Ray (0 = all)")
    g.add_argument("--cpus-per-trial", type=float, default=1.0)
    g.add_argument("--gpus-per-trial", type=float, default=0.0)
    g.add_argument("--max-concurrent", type=int, default=0)
    g.add_argument("--max-failures", type=int, default=2)
    g.add_argument("--verbose", type=int, default=1)
    return p


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise RobustnessError(f"{flag} {text!r}: expected comma-separated integers") from None


def study_from_args(args: argparse.Namespace, tracker: Any = None) -> Study:
    from mmsa_core.config import parse_assignments

    methods = [m for m in args.methods.replace(" ", "").split(",") if m]
    rates = None
    if args.rates is not None:
        rates = []
        for s in args.rates.replace(" ", "").split(","):
            try:
                rates.append(float(s))
            except ValueError:
                raise RobustnessError(f"--rates {args.rates!r}: {s!r} is not a number in [0, 1]") from None
    overrides: dict[str, Any] = {}
    if args.smoke:
        from sweeps.config import SMOKE_RUN_OVERRIDES  # pure data

        overrides.update(SMOKE_RUN_OVERRIDES)
        overrides.update(text_encoder="tiny", max_epochs=2)
    try:
        overrides.update(parse_assignments(args.set))
    except ValueError as exc:
        raise RobustnessError(str(exc)) from None
    sweeps: dict[str, str] = {}
    for item in args.base_sweep:
        if "=" in item:
            m, s = item.split("=", 1)
        elif len(methods) == 1:
            m, s = methods[0], item
        else:
            raise RobustnessError(f"--base-sweep {item!r}: with several methods write METHOD=SWEEP")
        sweeps[m.strip()] = s.strip()
    return build_study(methods=methods, protocol=args.protocol, rates=rates,
                       seeds=_ints(args.seeds, "--seeds") if args.seeds else DEFAULT_SEEDS,
                       data=args.data, preset=args.preset, overrides=overrides, base_sweeps=sweeps,
                       name=args.name, mask_seeds=_ints(args.mask_seeds, "--mask-seeds"), tracker=tracker)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ablations.runner import AblationRunError, RunOptions

    opts = RunOptions(storage_path=args.storage_path, tracking_uri=args.tracking_uri or "",
                      address=args.address or "", num_cpus=args.num_cpus, cpus_per_trial=args.cpus_per_trial,
                      gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent,
                      max_failures=args.max_failures, verbose=args.verbose)
    try:
        tracker = None
        if args.base_sweep:
            from sweeps.tracking import Tracker

            tracker = Tracker(opts.resolved_tracking_uri())
        study = study_from_args(args, tracker)
        result = run_study(study, opts)
    except (RobustnessError, AblationRunError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # SweepInterrupted included: Tune saved its state
        print(f"interrupted: {exc or 'Ctrl-C'}; re-run the same command to resume", file=sys.stderr)
        return 130
    print(result.format())
    return 0 if result.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
