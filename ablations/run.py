"""Run an ablation study: every (variant, seed) of a spec as one Ray Tune grid, logged to MLflow.

    python ablations/run.py ablations/specs/hscl_modalities.yaml
    python ablations/run.py quickstart --max-epochs 3 --seeds 1111,1112 --set synthetic_train=256
    python ablations/run.py hscl_combined --base-sweep hscl-mosi --gpus-per-trial 0.25
    python ablations/run.py SPEC --validate-only        # check the spec (and a sweep base), run nothing
    ray job submit --working-dir . -- python ablations/run.py SPEC --storage-path /shared/runs

The spec is validated (every problem at once) and the data checked before anything is launched.
MLflow: a parent run per study (`kind=ablation`, run name = study name, artifact
`ablation_spec.yaml`) in experiment `mmsa-<dataset>`, a child per (variant, seed) tagged
`stage=ablation`, `ablation=<variant>`, `seed`, `reference`. Re-running the same command resumes:
(variant, seed) pairs whose child run FINISHED are not trained again. With a `robustness:` block,
the reference variant's trained models are then evaluated on a corrupted test split and the metrics
`robust/<kind>-<modalities>/r<rate>/test/<m>` are logged on their runs.
Command-line changes (--set, --max-epochs, --text-encoder) apply to the base of every variant; a
variant's own delta in the spec wins over them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (also under `ray job submit`): import from the repo root
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from ablations.spec import AblationSpec, AblationSpecError, load_spec, spec_with_changes  # noqa: E402  (no torch/ray)
from mmsa_core.cli_options import add_training_arguments  # noqa: E402  (pure Python)
from mmsa_core.config import parse_assignments  # noqa: E402  (pure Python)
from sweeps.runtime_options import RuntimeOptions, add_runtime_arguments  # noqa: E402  (pure Python)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python ablations/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC", help="spec file, or a shipped spec's name (ablations/specs/)")
    g = p.add_argument_group("what runs (changes to the spec)")
    g.add_argument("--name", default=None, help="study name (default: the spec's `name`, else the file's stem)")
    add_training_arguments(g, flags=("data", "seeds", "max_epochs", "text_encoder"), defaults={
        "data": "the spec's", "seeds": "the spec's", "max_epochs": "the spec's", "text_encoder": "the spec's"})
    g.add_argument("--variants", default=None, metavar="V1,V2,...",
                   help="run only these variants of the spec (the reference is always kept)")
    g.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a RunConfig field for every variant's base (repeatable); a variant's own delta wins")
    g.add_argument("--base-sweep", default=None, metavar="NAME_OR_RUN_ID",
                   help="start from the best configuration of a finished sweep (its parent run's "
                        "best_config.json) instead of the spec's base")
    g.add_argument("--smoke", action="store_true",
                   help="tiny encoder, small synthetic splits, 2 epochs, 2 seeds: a check that everything runs")
    g.add_argument("--no-robustness", action="store_true", help="skip the spec's test-time robustness block")
    p.add_argument("--validate-only", action="store_true",
                   help="validate the spec with these changes (and resolve a sweep base if the tracking "
                        "store is reachable); launch nothing")
    add_runtime_arguments(p, storage_help="Ray Tune results and checkpoints go to <path>/ablations/<name> "
                                          "(shared storage on a multi-node cluster); the MLflow store beside them")
    return p


def spec_from_args(args: argparse.Namespace) -> AblationSpec:
    """The spec file with the command line's changes, validated (AblationSpecError lists problems)."""
    spec = load_spec(args.spec)
    base_set: dict[str, object] = {}
    seeds = None
    if args.smoke:
        from sweeps.config import SMOKE_RUN_OVERRIDES  # pure data

        base_set.update(SMOKE_RUN_OVERRIDES)
        base_set.update(text_encoder="tiny", max_epochs=2)
        seeds = list(spec.seeds[:2])
    if args.text_encoder is not None:
        base_set["text_encoder"] = args.text_encoder
    if args.max_epochs is not None:
        base_set["max_epochs"] = args.max_epochs
    try:
        base_set.update(parse_assignments(args.set))
    except ValueError as exc:
        raise AblationSpecError(f"{spec.source} (command line)", [str(exc)]) from None
    if args.seeds is not None:
        try:
            seeds = [int(s) for s in args.seeds.replace(" ", "").split(",") if s]
        except ValueError:
            raise AblationSpecError(f"{spec.source} (command line)",
                                    [f"--seeds {args.seeds!r}: expected comma-separated integers"]) from None
    variants = None if args.variants is None else [v for v in args.variants.replace(" ", "").split(",") if v]
    return spec_with_changes(spec, name=args.name, data=args.data, seeds=seeds, variants=variants,
                             base_set=base_set, base_sweep=args.base_sweep)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = spec_from_args(args)
    except (AblationSpecError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 2
    from ablations.runner import run_ablation, validate_only
    from ablations.study import StudyError
    from sweeps.console import quiet_console

    try:
        runtime = RuntimeOptions.from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    quiet_console(runtime.verbose)
    if not args.validate_only:  # the tracking store answers (seconds) before Ray starts
        from sweeps.preflight import PreflightError, check_tracking

        try:
            check_tracking(runtime.resolved_tracking_uri())
        except PreflightError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        if args.validate_only:
            print(validate_only(spec, runtime))
            return 0
        summary = run_ablation(spec, runtime, robustness=not args.no_robustness)
    except (AblationSpecError, StudyError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # SweepInterrupted included: Tune saved its state
        print(f"interrupted: {exc or 'Ctrl-C'}; re-run the same command to resume", file=sys.stderr)
        return 130
    print(summary.format())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
