"""Compare methods: every (method, seed) from the method's paper defaults, as one Ray Tune grid.

    python ablations/compare.py --methods all --seeds 1111,1112,1113
    python ablations/compare.py --methods hscl,l1,mmckd --data ../shared/data/mosi_clean/mosi_clean.pkl
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
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if __package__ in (None, ""):  # run as a file (also under `ray job submit`): import from the repo root
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from ablations.schema import DATA_FIELDS  # noqa: E402  (pure Python)
from mmsa_core.config import DATASET_PRESETS, RunConfig, parse_assignments  # noqa: E402
from mmsa_core.methods import method_names  # noqa: E402
from sweeps.preflight import redact_uri  # noqa: E402  (stdlib only)

if TYPE_CHECKING:
    from sweeps.config import GridRunResult

STAGE = "final"  # what the report's method comparison reads
KIND = "comparison"
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
        preset = "mosei" if "mosei" in os.path.basename(data).lower() else "mosi"
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


@dataclass
class ComparisonResult:
    comparison: Comparison
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    results: list[tuple[str, int, "GridRunResult"]]

    @property
    def ok(self) -> bool:
        return all(r.status in ("FINISHED", "SKIPPED") for _, _, r in self.results)


def run_comparison(comp: Comparison, *, storage_path: str = "runs/sweeps", tracking_uri: str = "",
                   address: str = "", num_cpus: int = 0, cpus_per_trial: float = 1.0,
                   gpus_per_trial: float = 0.0, max_concurrent: int = 0, max_failures: int = 2,
                   verbose: int = 1) -> ComparisonResult:
    """Train every (method, seed) not yet finished under one parent run; returns the grid's results."""
    from sweeps.cluster import prepare_data
    from sweeps.config import GridRun, TrialResources, resolve_tracking_uri
    from sweeps.grid import run_grid
    from sweeps.lifecycle import connect_checked, parent_run, prepare_storage
    from sweeps.tracking import Tracker

    uri = resolve_tracking_uri(tracking_uri, storage_path)
    resources = TrialResources(cpu=cpus_per_trial, gpu=gpus_per_trial)
    directory = os.path.join(os.path.abspath(os.path.expanduser(storage_path)), "comparisons", comp.name)
    prepare_storage(directory, uri)
    data = prepare_data(next(iter(comp.configs.values())))
    tracker = Tracker(uri)
    experiment_id = tracker.experiment(data.name)
    connect_checked(address, num_cpus, resources)
    tags = {"method": ",".join(comp.configs), "dataset": data.name, "sampler": "grid",
            "config_hash": comp.fingerprint(), "seeds": ",".join(map(str, comp.seeds)), "methods": ",".join(comp.configs)}
    runs, index = [], []
    for seed in comp.seeds:  # seed-major: an interrupted comparison has every method on its first seeds
        for method, cfg in comp.configs.items():
            key = comp.run_key(method, seed)
            runs.append(GridRun(key=key, config=cfg.replace(seed=seed), name=f"{comp.name}-{key}",
                                tags={"stage": STAGE, "method": method, "seed": str(seed)}))
            index.append((method, seed))
    with parent_run(tracker, experiment_id, name=comp.name, kind=KIND, tags=tags) as parent:
        tracker.log_json(parent.run_id, {m: c.to_dict() for m, c in comp.configs.items()}, "comparison_configs.json")
        print(f"comparison {comp.name!r}: {len(comp.configs)} methods x {len(comp.seeds)} seeds = {len(runs)} runs "
              f"on {data.name}", flush=True)
        grid_name = "grid-" + comp.fingerprint()
        results = run_grid(runs, data=data, target=parent.target(dataset=data.name), storage_path=directory,
                           name=grid_name, resources=resources, max_concurrent=max_concurrent,
                           max_failures=max_failures, verbose=verbose)
        out = ComparisonResult(comp, uri, experiment_id, parent.run_id,
                               [(m, s, r) for (m, s), r in zip(index, results)])
        parent.status = "FINISHED" if out.ok else "FAILED"
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python ablations/compare.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="all", help=f"comma-separated, or all (default): {', '.join(method_names())}")
    p.add_argument("--name", default=None, help="comparison name = MLflow parent run (default: compare-<data>)")
    p.add_argument("--data", default="synthetic-mosi", help="synthetic-mosi, synthetic-mosei, an MMSA pickle or a "
                                                            "converted directory (default: %(default)s)")
    p.add_argument("--preset", default="auto", help="mosi | mosei | auto (from the data's name) (default: %(default)s)")
    p.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="(default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a configuration key for every method (a method's own <method>.<field> for that method)")
    p.add_argument("--smoke", action="store_true", help="tiny encoder, small synthetic splits, 1 epoch")
    g = p.add_argument_group("where and how it runs")
    g.add_argument("--storage-path", default="runs/sweeps", help="(default: %(default)s, the sweeps' store)")
    g.add_argument("--tracking-uri", default="", help="MLflow URI (default: $MLFLOW_TRACKING_URI, else "
                                                      "sqlite:///<storage-path>/mlflow.db)")
    g.add_argument("--address", default="", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    g.add_argument("--num-cpus", type=int, default=0)
    g.add_argument("--cpus-per-trial", type=float, default=1.0)
    g.add_argument("--gpus-per-trial", type=float, default=0.0)
    g.add_argument("--max-concurrent", type=int, default=0)
    g.add_argument("--verbose", type=int, default=1)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        values: dict[str, Any] = dict(SMOKE_SET) if args.smoke else {}
        values.update(parse_assignments(args.set))
        seeds = [int(s) for s in args.seeds.replace(" ", "").split(",") if s]
        comp = build_comparison(args.methods.split(","), data=args.data, preset=args.preset, seeds=seeds,
                                values=values, name=args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from sweeps.cluster import SweepValidationError
    from sweeps.state import SweepStateError

    try:
        res = run_comparison(comp, storage_path=args.storage_path, tracking_uri=args.tracking_uri,
                             address=args.address, num_cpus=args.num_cpus, cpus_per_trial=args.cpus_per_trial,
                             gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent,
                             verbose=args.verbose)
    except (SweepValidationError, SweepStateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # SweepInterrupted included: Tune saved its state
        print(f"interrupted: {exc or 'Ctrl-C'}; re-run the same command to resume", file=sys.stderr)
        return 130
    for method, seed, r in res.results:
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
