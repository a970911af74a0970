"""Missing-modality robustness of any registered method, by the field's protocol (MMSA masking).

    python ablations/robustness.py --methods hscl,mmckd                      # evaluate at every rate
    python ablations/robustness.py --methods hscl --protocol retrain --seeds 111,1111,11111
    python ablations/robustness.py --methods hscl,mmckd --smoke --rates 0,0.5,1
    python ablations/robustness.py --methods hscl --base-sweep hscl=hscl-mosi --data data/mosi.pkl

Masking is MMSA's, through `mmsa_core.data.masking` (TFR-Net / EMT-DLFR / LNLN): every valid token
(except [CLS] / [SEP]) and acoustic / visual frame dropped with ``keep = U(0,1) > r``, one mask seed
per modality ((111, 1111, 11111) for (T, A, V)), so the masks are nested across rates.
Two protocols (``--protocol``):

- ``evaluate`` (default, LNLN's test protocol): one Ray Tune grid over (method, seed) trains on
  complete data and selects on complete validation; inside each trial, right after training, the
  best-validation weights are evaluated on masked TEST copies at every rate
  (``robust/tokens-tav/r<rate:.2f>/test/<m>``) and on whole-modality-drop copies
  (``robust/absent-<a|v|av>/test/<m>``) — `ablations.evaluation.TestTimeEvaluation`. The evaluation
  only reads the checkpoint: training and selection never see a masked array. A FINISHED run that
  lacks some of these metrics (rates added later, a failed evaluation) is evaluated afterwards in the
  driver from its last Tune checkpoint.
- ``retrain`` (TFR-Net / EMT-DLFR): for each rate one Ray Tune grid over (method, seed) on the
  dataset masked at that rate in train, valid and test alike (`masking.masked_dataset`, built in
  the driver, one shared dataset per rate); each (method, rate, seed) is a child run tagged
  ``rate=<r:.2f>`` whose ``best/test/<m>`` is the masked test at the masked-validation best epoch.

MLflow: one parent run per study (``kind=robustness``, run name = study name, tags ``protocol``,
``methods``, ``rates``, ``seeds``, ``mask_seeds``), children tagged ``stage=robustness``,
``protocol``, ``method``, ``seed`` (and ``rate`` for retrain). Re-running the same command resumes
(children that FINISHED are not trained again). Report: ``python -m reports --robustness NAME``.

The study runs on the one study driver (`ablations.study`); this module holds what is its own: the
request (`RobustnessStudy`, `build_study`), its runs and grids (`robustness_study`) and its command line.
Imports Ray, MLflow and torch only inside functions.
"""

from __future__ import annotations

import argparse
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

from ablations.study import Study, StudyGrid, StudyOutcome, StudySummary, run_study, runs_digest  # noqa: E402
from mmsa_core.cli_options import add_training_arguments, training_overrides  # noqa: E402  (pure Python)
from mmsa_core.config import DATA_FIELDS  # noqa: E402  (pure Python)
from mmsa_core.data.masking import DEFAULT_SEEDS as MASK_SEEDS, MASK_MODALITIES  # noqa: E402  (NumPy only)
from mmsa_core.record_names import ABSENT_KIND, Tag, rate_tag  # noqa: E402
from sweeps.preflight import redact_uri  # noqa: E402  (stdlib only)
from sweeps.runtime_options import RuntimeOptions, add_runtime_arguments  # noqa: E402  (stdlib only)

if TYPE_CHECKING:
    from ablations.evaluation import TestTimeEvaluation
    from mmsa_core.config import RunConfig

log = logging.getLogger("ablations")
PROTOCOLS = ("evaluate", "retrain")
KIND = "robustness"
STAGE = "robustness"
ABSENT = ("a", "v", "av")
DEFAULT_SEEDS = (1111, 1112, 1113)  # training seeds: the comparison's (ablations.compare), so tables match
SUMMARY_ARTIFACT = "robustness_summary.json"


class RobustnessError(ValueError):
    """The study cannot run as asked; the message names the flag / field."""


# =============================================================================================
# the request


@dataclass(frozen=True)
class RobustnessStudy:
    """A validated robustness study request: what is trained and evaluated."""

    name: str
    protocol: str
    methods: tuple[str, ...]
    rates: tuple[float, ...]
    seeds: tuple[int, ...]
    configs: Mapping[str, "RunConfig"]  # method -> base configuration (seed set per run)
    mask_seeds: tuple[int, int, int] = MASK_SEEDS
    base_sweeps: Mapping[str, str] = field(default_factory=dict)

    def config(self, method: str, seed: int) -> "RunConfig":
        return self.configs[method].replace(seed=seed)

    def fingerprint(self) -> str:
        """The parent's ``config_hash`` tag: what is trained and evaluated, seeds and placement aside."""
        from mmsa_core.config import PLACEMENT_FIELDS

        def signature(cfg: "RunConfig") -> dict[str, Any]:
            return {k: v for k, v in cfg.to_dict().items() if k not in ("seed", *PLACEMENT_FIELDS)}

        return runs_digest({"protocol": self.protocol, "rates": self.rates, "seeds": self.seeds,
                            "mask_seeds": self.mask_seeds,
                            "configs": {m: signature(c) for m, c in self.configs.items()}})


def _sweep_base(method: str, sweep: str, data: str, tracker: Any) -> "RunConfig":
    """The best configuration of a finished sweep, resolved exactly as an ablation's
    ``base: {sweep: ...}`` is (`ablations.runner.sweep_best_config`)."""
    from ablations.runner import sweep_best_config

    return sweep_best_config(tracker, sweep, method=method, data=data, source=f"--base-sweep {method}={sweep}")


def build_study(*, methods: Sequence[str], protocol: str = "evaluate", rates: Sequence[float] | None = None,
                seeds: Sequence[int] = DEFAULT_SEEDS, data: str | None = None, preset: str = "auto",
                overrides: Mapping[str, Any] | None = None, base_sweeps: Mapping[str, str] | None = None,
                name: str | None = None, mask_seeds: Sequence[int] = MASK_SEEDS,
                tracker: Any = None) -> RobustnessStudy:
    """Validate everything (every problem at once) and build each method's configuration."""
    from mmsa_core.config import RunConfig, resolve_preset
    from mmsa_core.data.masking import RATES, check_rate
    from mmsa_core.methods import method_names

    problems: list[str] = []
    try:
        preset = resolve_preset(preset, data or "synthetic-mosi")
    except ValueError as exc:
        problems.append(str(exc))
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
        mask_seeds_t = MASK_SEEDS
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
    return RobustnessStudy(name=name, protocol=protocol, methods=tuple(methods), rates=tuple(sorted(checked)),
                 seeds=tuple(seeds), configs=configs, mask_seeds=mask_seeds_t,  # type: ignore[arg-type]
                 base_sweeps=base_sweeps)


# =============================================================================================
# the study


def run_key(method: str, seed: int, rate: float | None = None) -> str:
    return f"{method}-seed{seed}" if rate is None else f"{method}-r{rate:.2f}-seed{seed}"


def masked_evaluation(request: RobustnessStudy, keys: Sequence[str], unk_id: int) -> "TestTimeEvaluation":
    """The evaluate protocol's test-time settings: MMSA masking of T, A, V at every rate, and each of
    the acoustic / visual / both streams absent."""
    from ablations.evaluation import TestTimeEvaluation
    from mmsa_core.data.corruption import MASKING_KIND, Corruption

    corruptions = [Corruption(MASKING_KIND, MASK_MODALITIES, r, unk_token_id=unk_id, mask_seeds=request.mask_seeds)
                   for r in request.rates]
    corruptions += [Corruption(ABSENT_KIND, a) for a in ABSENT]
    return TestTimeEvaluation(corruptions=tuple(corruptions), run_keys=frozenset(keys))


def robustness_study(request: RobustnessStudy) -> Study:
    """The request as a study: one grid over (method, seed) with the masked evaluation (evaluate
    protocol), or one grid per rate on data masked at that rate (retrain protocol)."""
    from functools import partial

    from mmsa_core.data.masking import masked_dataset, tokenizer_unk_id
    from sweeps.config import GridRun

    unk = tokenizer_unk_id(request.configs[request.methods[0]].text_encoder)
    grids: list[StudyGrid] = []
    rates: list[float | None] = [None] if request.protocol == "evaluate" else list(request.rates)
    for rate in rates:
        tags = {Tag.STAGE: STAGE, Tag.PROTOCOL: request.protocol}
        if rate is not None:
            tags[Tag.RATE] = rate_tag(rate)
        runs = tuple(GridRun(key=run_key(m, s, rate), config=request.config(m, s),
                             name=f"{request.name}-{run_key(m, s, rate)}", tags=dict(tags))
                     for s in request.seeds for m in request.methods)  # seed-major, as the comparison
        name = ("grid-" if rate is None else f"grid-r{rate:.2f}-") + runs_digest(
            [(r.key, r.config.to_dict(), request.mask_seeds) for r in runs])
        data = None if rate is None else partial(masked_dataset, rate=rate, seeds=request.mask_seeds, unk_id=unk)
        grids.append(StudyGrid(name=name, runs=runs, label=KIND if rate is None else f"{KIND} r={rate:.2f}", data=data))
    evaluation = None
    if request.protocol == "evaluate":
        evaluation = masked_evaluation(request, [r.key for g in grids for r in g.runs], unk)
    methods = ",".join(request.methods)
    tags = {Tag.METHOD: methods, Tag.METHODS: methods, Tag.PROTOCOL: request.protocol,
            Tag.RATES: ",".join(rate_tag(r) for r in request.rates), Tag.SEEDS: ",".join(map(str, request.seeds)),
            Tag.MASK_SEEDS: ",".join(map(str, request.mask_seeds)), Tag.CONFIG_HASH: request.fingerprint()}
    if request.base_sweeps:
        tags[Tag.BASE_SWEEP] = ",".join(f"{m}={s}" for m, s in request.base_sweeps.items())
    note = (f"missing-modality robustness on {{data}} (train/valid/test {{sizes}}), {request.protocol} protocol: "
            f"{methods}, rates {', '.join(f'{r:g}' for r in request.rates)}, seeds {','.join(map(str, request.seeds))}, "
            f"MMSA masking with seeds {','.join(map(str, request.mask_seeds))} (T, A, V).")
    return Study(kind=KIND, name=request.name, folder="robustness", source=f"robustness study {request.name!r}",
                 configs=dict(request.configs), grids=tuple(grids), parent_tags=tags, description=note,
                 artifacts={"robustness_configs.json": {m: c.to_dict() for m, c in request.configs.items()}},
                 evaluation=evaluation, resume_tags={Tag.PROTOCOL: request.protocol}, summarize=_summary)


def _summary(outcome: StudyOutcome) -> StudySummary:
    """The artifact, and as headline metrics each method's complete-data test MAE and Acc-2 (mean over
    seeds; for the retrain protocol at its lowest rate)."""
    from ablations.study import mean_std

    runs = [{"method": run.config.method, "seed": run.config.seed,
             "rate": float(run.tags[Tag.RATE]) if Tag.RATE in run.tags else None,
             "run_id": r.run_id, "status": r.status, "best_epoch": r.best_epoch} for run, r in outcome.results]
    lowest = min((float(run.tags[Tag.RATE]) for run, _ in outcome.results if Tag.RATE in run.tags), default=None)
    metrics: dict[str, float] = {}
    for method in dict.fromkeys(run.config.method for run, _ in outcome.results):
        rows = [r.best_test for run, r in outcome.results if run.config.method == method and r.best_test
                and r.status in ("FINISHED", "SKIPPED")
                and (Tag.RATE not in run.tags or float(run.tags[Tag.RATE]) == lowest)]
        for key in ("mae", "acc2_non0"):
            mean, _, n = mean_std([row[key] for row in rows if key in row])
            if n:
                metrics[f"{method}/test/{key}"] = mean
    return StudySummary(artifact_name=SUMMARY_ARTIFACT,
                        artifact={"study": outcome.study.name, "protocol": outcome.study.resume_tags[Tag.PROTOCOL],
                                  "runs": runs}, metrics=metrics)


def run_robustness(request: RobustnessStudy, runtime: RuntimeOptions) -> StudyOutcome:
    """Run the robustness study (`ablations.study.run_study`)."""
    return run_study(robustness_study(request), runtime)


def format_outcome(request: RobustnessStudy, outcome: StudyOutcome) -> str:
    bad = [(run.key, r) for run, r in outcome.results if r.status not in ("FINISHED", "SKIPPED")]
    lines = [f"\nrobustness {request.name!r} ({request.protocol} protocol, {', '.join(request.methods)} on "
             f"{outcome.dataset}): {len(outcome.results)} runs, {outcome.finished_before} finished before"]
    lines += [f"  {r.status}: {key}" for key, r in bad]
    driver = sum(v == "driver" for v in outcome.evaluated.values())
    if driver:
        lines.append(f"masked evaluation of {driver} run(s) done in the driver")
    lines += [f"note: {n}" for n in outcome.notes]
    lines.append(outcome.where())
    lines.append(f"report: python -m reports --robustness {request.name} --tracking-uri "
                 f"{redact_uri(outcome.tracking_uri)}")
    return "\n".join(lines)


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
    g.add_argument("--mask-seeds", default="111,1111,11111", metavar="T,A,V",
                   help="seeds of the masks, one per modality (default: %(default)s, MMSA's)")
    add_training_arguments(g, defaults={"data": "each method's preset's synthetic data", "preset": "auto",
                                        "text_encoder": "each method's, minilm", "max_epochs": "each method's preset",
                                        "seeds": "1111,1112,1113, the method comparison's"})
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a RunConfig field for every method (repeatable); <method>.<field> only for that method")
    g.add_argument("--base-sweep", action="append", default=[], metavar="METHOD=SWEEP",
                   help="start METHOD from the best configuration of a finished sweep (repeatable; a bare "
                        "SWEEP with a single method)")
    g.add_argument("--name", default=None, help="study name (default: robustness-<protocol>-<methods>)")
    g.add_argument("--smoke", action="store_true", help="tiny encoder, small synthetic splits, 2 epochs")
    add_runtime_arguments(p, storage_help="Tune state in <path>/robustness/<name>; the MLflow store beside it")
    return p


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise RobustnessError(f"{flag} {text!r}: expected comma-separated integers") from None


def study_from_args(args: argparse.Namespace, tracker: Any = None) -> RobustnessStudy:
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
    overrides.update(training_overrides(args))
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
                       data=args.data, preset=args.preset or "auto", overrides=overrides, base_sweeps=sweeps,
                       name=args.name, mask_seeds=_ints(args.mask_seeds, "--mask-seeds"), tracker=tracker)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ablations.study import StudyError
    from sweeps.console import quiet_console
    from sweeps.preflight import PreflightError, check_tracking

    try:
        runtime = RuntimeOptions.from_args(args)
        tracker = None
        if args.base_sweep:
            from sweeps.tracking import Tracker

            tracker = Tracker(runtime.resolved_tracking_uri())
        request = study_from_args(args, tracker)
        check_tracking(runtime.resolved_tracking_uri())
        quiet_console(runtime.verbose)  # once the request is valid: it sets this process's environment
        outcome = run_robustness(request, runtime)
    except (RobustnessError, StudyError, PreflightError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # SweepInterrupted included: Tune saved its state
        print(f"interrupted: {exc or 'Ctrl-C'}; re-run the same command to resume", file=sys.stderr)
        return 130
    print(format_outcome(request, outcome))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
