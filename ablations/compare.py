"""Compare methods: every (method, seed) from the method's paper defaults, as one Ray Tune grid.

    python ablations/compare.py --methods all --seeds 1111,1112,1113
    python ablations/compare.py --methods hscl,l1,mmckd --data path/to/mosi_clean.pkl   # docs/DATA.md
    python ablations/compare.py --smoke                  # tiny encoder, small synthetic splits, 1 epoch
    python -m reports --methods --experiment mmsa-synthetic-mosi   # the table: paired tests vs HSCL

Why a command of its own: a reviewer's method table needs every method trained on the same data,
with the same seeds, from each paper's own configuration — not the newest sweep of each. One MLflow
parent run per comparison (``kind=comparison``, run name = the comparison's name) holds one child
per (method, seed) tagged ``stage=final``, ``method``, ``seed`` — the stage the report's method
comparison reads (`reports.build`: the newest sweep or comparison per method; Δ and paired tests
against HSCL over matched seeds, Holm-corrected). Re-running the same command resumes: finished
(method, seed) pairs are not trained again.

`--set KEY=VALUE` applies to every method (shared keys, e.g. ``max_epochs=10``, or one method's own
``hycon.tau=0.2``, which only that method takes). Fields that decide the dataset must agree across
methods (one shared dataset); a preset that would change them (a MOSEI preset's data) is overridden
by ``--data``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

if __package__ in (None, ""):  # run as a file (also under `ray job submit`): import from the repo root
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from ablations.study import Study, StudyGrid, StudyOutcome, StudySummary, mean_std, run_study  # noqa: E402
from mmsa_core.config import DATA_FIELDS, DATASET_PRESETS, RunConfig, dataset_preset_for, parse_assignments  # noqa: E402
from mmsa_core.cli_options import add_training_arguments, parse_seeds, training_overrides  # noqa: E402
from mmsa_core.methods import method_names  # noqa: E402
from mmsa_core.record_names import Tag  # noqa: E402
from sweeps.preflight import redact_uri  # noqa: E402  (stdlib only)
from sweeps.runtime_options import RuntimeOptions, add_runtime_arguments  # noqa: E402  (stdlib only)

STAGE = "final"  # what the report's method comparison reads
KIND = "comparison"
SUMMARY_ARTIFACT = "comparison_summary.json"
DEFAULT_SEEDS = (1111, 1112, 1113)
SMOKE_SET = dict(text_encoder="tiny", synthetic_train=96, synthetic_valid=48, synthetic_test=48, batch_size=32,
                 max_epochs=1, av_layers=1)


class ComparisonError(ValueError):
    """The comparison cannot run as asked (an unknown method, configurations that do not share data)."""


@dataclass(frozen=True)
class Comparison:
    """What a comparison trains: one configuration per method, each over `seeds`."""

    name: str
    data: str
    configs: Mapping[str, RunConfig]  # method -> its configuration (seed: the first of `seeds`)
    seeds: tuple[int, ...]

    def run_key(self, method: str, seed: int) -> str:
        return f"{method}-seed{seed}"

    def fingerprint(self) -> str:
        blob = json.dumps({m: c.replace(seed=0).to_dict() for m, c in self.configs.items()} | {"seeds": list(self.seeds)},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_comparison(methods: Sequence[str], *, data: str = "synthetic-mosi", preset: str = "auto",
                     seeds: Sequence[int] = DEFAULT_SEEDS, values: Mapping[str, Any] | None = None,
                     name: str | None = None) -> Comparison:
    """Validate and build every method's configuration (one error listing every problem)."""
    known = method_names()
    methods = list(known) if list(methods) in (["all"], []) else [m.strip() for m in methods if m.strip()]
    problems = [f"unknown method {m!r}; registered methods: {list(known)}" for m in methods if m not in known]
    if len(set(methods)) != len(methods):
        problems.append(f"methods {methods} name one method twice")
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        problems.append(f"seeds {list(seeds)} must be a non-empty list without duplicates")
    if preset == "auto":
        preset = dataset_preset_for(data)
    if preset not in DATASET_PRESETS:
        problems.append(f"preset {preset!r} must be one of {list(DATASET_PRESETS)} or auto")
    if problems:
        raise ComparisonError("invalid comparison: " + "; ".join(problems))
    values = dict(values or {})
    configs: dict[str, RunConfig] = {}
    for m in methods:
        own = {k: v for k, v in values.items() if "." not in k or k.startswith(f"{m}.")}
        try:
            cfg = RunConfig.paper(m, preset, data=data, **own)
        except ValueError as exc:
            problems.append(f"{m}: {exc}")
            continue
        configs[m] = cfg.replace(seed=seeds[0])
    foreign = sorted(k for k in values if "." in k and k.split(".", 1)[0] not in methods)
    if foreign:
        problems.append(f"--set {foreign}: no compared method has these keys (methods: {methods})")
    shapes = {m: tuple(getattr(c, f) for f in DATA_FIELDS) for m, c in configs.items()}
    if len(set(shapes.values())) > 1:
        problems.append("the methods' configurations do not share one dataset ("
                        + "; ".join(f"{m}: {dict(zip(DATA_FIELDS, s))}" for m, s in shapes.items())
                        + "): set the differing fields with --set")
    if problems:
        raise ComparisonError("invalid comparison: " + "; ".join(problems))
    from sweeps.config import data_name

    return Comparison(name=name or f"compare-{data_name(data)}", data=data, configs=configs, seeds=seeds)


def comparison_study(comp: Comparison) -> Study:
    """The comparison as a study: one grid of (method, seed), seed-major (an interrupted comparison
    has every method on its first seeds), children ``stage=final`` (what the method table reads)."""
    from sweeps.config import GridRun

    runs = []
    for seed in comp.seeds:
        for method, cfg in comp.configs.items():
            key = comp.run_key(method, seed)
            runs.append(GridRun(key=key, config=cfg.replace(seed=seed), name=f"{comp.name}-{key}",
                                tags={Tag.STAGE: STAGE, Tag.METHOD: method, Tag.SEED: str(seed)}))
    methods = ",".join(comp.configs)
    note = (f"method comparison on {{data}} (train/valid/test {{sizes}}): {methods} from their paper defaults, "
            f"seeds {','.join(map(str, comp.seeds))}.")
    return Study(kind=KIND, name=comp.name, folder="comparisons", source=f"comparison {comp.name!r}",
                 configs=dict(comp.configs), grids=(StudyGrid(name="grid-" + comp.fingerprint(), runs=tuple(runs),
                                                             label="comparison"),),
                 parent_tags={Tag.METHOD: methods, Tag.METHODS: methods, Tag.CONFIG_HASH: comp.fingerprint(),
                              Tag.SEEDS: ",".join(map(str, comp.seeds))},
                 description=note, artifacts={"comparison_configs.json": {m: c.to_dict() for m, c in comp.configs.items()}},
                 summarize=_summary)


def _summary(outcome: StudyOutcome) -> StudySummary:
    by_method: dict[str, list[dict[str, float]]] = {}
    for run, res in outcome.results:
        if res.status in ("FINISHED", "SKIPPED") and res.best_test:
            by_method.setdefault(run.tags[Tag.METHOD], []).append(res.best_test)
    table = {m: {k: mean_std([r[k] for r in rows if k in r]) for k in ("mae", "corr", "acc2_non0")}
             for m, rows in by_method.items()}
    ranked = sorted(((row["mae"][0], m) for m, row in table.items() if row["mae"][2]), key=lambda x: x[0])
    metrics = {f"{m}/test/{k}": v[0] for m, row in table.items() for k, v in row.items() if v[2]}
    return StudySummary(
        artifact_name=SUMMARY_ARTIFACT,
        artifact={"comparison": outcome.study.name, "test": {m: {k: {"mean": v[0], "std": v[1], "n": v[2]}
                                                               for k, v in row.items()} for m, row in table.items()},
                  "runs": [{"method": run.tags[Tag.METHOD], "seed": int(run.tags[Tag.SEED]), "run_id": r.run_id,
                            "status": r.status, "best_epoch": r.best_epoch} for run, r in outcome.results]},
        description=("Test mae, mean over seeds: " + ", ".join(f"{m} {v:.4f}" for v, m in ranked) + ".") if ranked else "",
        metrics=metrics)


def run_comparison(comp: Comparison, runtime: RuntimeOptions) -> StudyOutcome:
    """Train every (method, seed) not yet finished under one parent run (`ablations.study.run_study`)."""
    return run_study(comparison_study(comp), runtime)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python ablations/compare.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="all", help=f"comma-separated, or all (default): {', '.join(method_names())}")
    p.add_argument("--name", default=None, help="comparison name = MLflow parent run (default: compare-<data>)")
    add_training_arguments(p, defaults={"data": "synthetic-mosi", "preset": "auto", "text_encoder": "each method's, minilm",
                                        "max_epochs": "each method's preset", "seeds": ",".join(map(str, DEFAULT_SEEDS))})
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a configuration key for every method (a method's own <method>.<field> for that method)")
    p.add_argument("--smoke", action="store_true", help="tiny encoder, small synthetic splits, 1 epoch")
    add_runtime_arguments(p, storage_help="Tune state in <path>/comparisons/<name>; the MLflow store beside it")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        values: dict[str, Any] = dict(SMOKE_SET) if args.smoke else {}
        values.update(training_overrides(args))
        values.update(parse_assignments(args.set))
        seeds = parse_seeds(args.seeds) if args.seeds else list(DEFAULT_SEEDS)
        comp = build_comparison(args.methods.split(","), data=args.data or "synthetic-mosi",
                                preset=args.preset or "auto", seeds=seeds,
                                values=values, name=args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from sweeps.console import quiet_console
    from sweeps.preflight import PreflightError, check_tracking

    try:
        runtime = RuntimeOptions.from_args(args)
        check_tracking(runtime.resolved_tracking_uri())
        quiet_console(runtime.verbose)  # once the request is valid: it sets this process's environment
        res = run_comparison(comp, runtime)
    except (ValueError, PreflightError) as exc:  # StudyError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # SweepInterrupted included: Tune saved its state
        print(f"interrupted: {exc or 'Ctrl-C'}; re-run the same command to resume", file=sys.stderr)
        return 130
    for run, r in res.results:
        method, seed = run.tags[Tag.METHOD], run.tags[Tag.SEED]
        mae = r.best_test.get("mae")
        print(f"  {method:<15} seed {seed}: {r.status:<8} test MAE {mae:.4f}" if mae is not None
              else f"  {method:<15} seed {seed}: {r.status}")
    from sweeps.config import data_name
    from sweeps.tracking import experiment_name

    print(f"report: python -m reports --methods --tracking-uri {redact_uri(res.tracking_uri)} "
          f"--experiment {experiment_name(data_name(comp.data))}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
