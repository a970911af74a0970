"""The sweep command line, for every registered method: ``python sweeps/<method>.py [options]``.

Why a module of its own: the parser, its defaults and the exit codes are the same whichever
method is swept; an entry script (`sweeps/hscl.py`, `sweeps/l1.py`) only names its default method
and its help text. ``--method`` accepts every method of the registry (`mmsa_core.methods`).

Exit codes: 0 done, 2 the sweep could not start (bad arguments, data, configuration, storage or
resources: the message says which), 130 interrupted (re-run the same command to resume).
Light on import: ``--help`` loads neither torch nor Ray (tests/sweeps/test_cli.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import Any, Sequence

from mmsa_core.cli_options import add_training_arguments  # pure Python
from mmsa_core.methods import method_names  # the registry: pure Python
from sweeps.config import SAMPLERS, SMOKE_DEFAULTS, SMOKE_RUNTIME, SweepConfig, smoke_config  # light
from sweeps.runtime_options import RuntimeOptions, add_runtime_arguments  # light

_D = SweepConfig()
_EXAMPLES = """\
Laptop (starts a local Ray and a local SQLite MLflow store under ./runs):
    {smoke:<52}# ~1 minute on 2 CPU cores
    {prog} --name mosi-a --num-samples 40 --data ~/data/MOSI/unaligned_50.pkl

Cluster (connects without resource arguments; MLflow server and shared storage):
    ray job submit --address http://HEAD:8265 --working-dir . -- {prog} \\
        --name mosi-a --tracking-uri http://MLFLOW:5000 --storage-path /shared/sweeps \\
        --data /shared/data/unaligned_50.pkl --gpus-per-trial 0.25

Re-running the same command with the same --name resumes an interrupted sweep.
"""


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--final-seeds {text!r}: expected integers, e.g. 1111,1112") from None


def build_parser(default_method: str = _D.method, *, prog: str | None = None,
                 description: str | None = None) -> argparse.ArgumentParser:
    """The sweep's arguments; ``--method`` defaults to `default_method`.

    ``prog`` defaults to the method's entry, ``python sweeps/<method>.py``; the help text is
    `description` (an entry's docstring: what it sweeps) followed by examples of the commands.
    """
    prog = prog or f"python sweeps/{default_method}.py"
    summary = description or (f"Sweep method {default_method!r} with Ray Tune + Optuna + ASHA, tracked "
                              f"in MLflow, then retrain the best configuration on several seeds.")
    p = argparse.ArgumentParser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
                                description=summary.rstrip() + "\n\n" + _EXAMPLES.format(
                                    prog=prog, smoke=f"{prog} --smoke"))
    g = p.add_argument_group("what to search")
    g.add_argument("--method", choices=method_names(), default=default_method,
                   help=f"loss family (default: {default_method})")
    add_training_arguments(g, flags=("data", "text_encoder", "preset"),
                           defaults={"data": _D.data, "text_encoder": f"{_D.text_encoder}; --smoke: tiny",
                                     "preset": "auto"})
    g.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
                   help="fix any RunConfig field for every trial, e.g. --set batch_size=64")
    g.add_argument("--num-samples", type=int, help=f"search trials (default: {_D.num_samples}; "
                                                   f"--smoke: {SMOKE_DEFAULTS['num_samples']})")
    add_training_arguments(g, flags=("max_epochs",), defaults={
        "max_epochs": f"the preset's, 20; --smoke: {SMOKE_DEFAULTS['max_epochs']}"})
    g.add_argument("--search-lr-dropout", action="store_true", default=None,
                   help="also search lr_text, lr_other and dropout")
    g.add_argument("--sampler", choices=SAMPLERS, help=f"Optuna sampler (default: {_D.sampler})")
    g.add_argument("--sampler-seed", type=int, help=f"(default: {_D.sampler_seed})")
    g.add_argument("--no-paper-start", dest="paper_start", action="store_false", default=None,
                   help="do not evaluate the preset's own loss weights as the first trial")
    g.add_argument("--asha-grace-period", type=int,
                   help=f"epochs before ASHA may stop a trial (default: {_D.asha_grace_period})")
    g.add_argument("--asha-reduction-factor", type=int,
                   help=f"ASHA reduction factor (default: {_D.asha_reduction_factor})")
    g.add_argument("--rerank-top", type=int, metavar="K",
                   help=f"re-train the K best full-fidelity search configurations on new seeds and pick the "
                        f"best mean validation objective, so that one lucky seed does not win (default: "
                        f"{_D.rerank_top}; --smoke: {SMOKE_DEFAULTS['rerank_top']}; 0 = off)")
    g.add_argument("--rerank-seeds", type=int, metavar="S",
                   help=f"new seeds per re-ranked configuration (default: {_D.rerank_seeds}; --smoke: "
                        f"{SMOKE_DEFAULTS['rerank_seeds']}; 0 = off)")
    g.add_argument("--budget-epochs", type=int, metavar="N",
                   help="compute budget: search trials keep starting until all trials' epochs reach N "
                        "(what ASHA saves buys more trials; --num-samples stays a cap) (default: 0 = "
                        "--num-samples trials)")
    g.add_argument("--final-seeds", type=_seeds,
                   help="seeds the best configuration is retrained on (default: 1111,1112,1113,1114,1115; "
                        "--smoke: 1111,1112)")
    g.add_argument("--smoke", action="store_true", default=None,
                   help="a tiny sweep (tiny encoder, small synthetic data, 3 trials x 3 epochs, 2 final seeds)")
    r = p.add_argument_group("sweep name (may not change when resuming)")
    r.add_argument("--name", help="sweep name: its directory and MLflow parent run; the same name "
                                  "resumes (default: <method>-<dataset>)")
    g = add_runtime_arguments(p, storage_help="sweep directories go here (<path>/<name>); shared storage "
                                              "on a multi-node cluster")
    g.add_argument("--optuna-storage", metavar="PATH_OR_URL",
                   help="the Optuna study: a journal file (a shared POSIX path on a cluster) or a database URL "
                        "(sqlite:///..., postgresql://..., mysql://...); pass the same one to resume (default: "
                        "<storage-path>/<name>/optuna_journal.log; required when --storage-path is a URI)")
    return p


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    """Explicit arguments win; --smoke fills the rest with its small defaults."""
    names = {f.name for f in dataclasses.fields(SweepConfig)} - {"runtime"}
    explicit: dict[str, Any] = {k: v for k, v in vars(args).items()
                                if k in names and v is not None and k != "overrides"}
    from mmsa_core.config import parse_assignments  # pure Python: keeps --help light

    overrides = parse_assignments(args.overrides)
    if explicit.get("data") and os.path.exists(os.path.expanduser(explicit["data"])):
        explicit["data"] = os.path.abspath(os.path.expanduser(explicit["data"]))
    if args.smoke:
        explicit.pop("smoke", None)
        runtime = RuntimeOptions.from_args(args, base=RuntimeOptions(**SMOKE_RUNTIME))
        return smoke_config(overrides=overrides, runtime=runtime, **explicit)
    return SweepConfig(overrides=overrides, runtime=RuntimeOptions.from_args(args), **explicit)


def main(argv: Sequence[str] | None = None, *, default_method: str = _D.method,
         description: str | None = None) -> int:
    """Parse, validate, run the sweep, print its result; returns the exit code."""
    args = build_parser(default_method, description=description).parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        return _cannot_start(exc)
    # the tracking store answers (seconds, stdlib only) before Ray starts
    from sweeps.preflight import PreflightError, check_tracking

    try:
        check_tracking(cfg.resolved_tracking_uri())
    except PreflightError as exc:
        return _cannot_start(exc)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and not args.storage_path:
        logging.getLogger("sweeps").warning(
            "running under `ray job submit` without --storage-path: results go to the job's "
            "temporary working dir (%s); pass shared storage", cfg.sweep_dir)
    from sweeps.cluster import SweepValidationError
    from sweeps.console import print_result, quiet_console

    quiet_console(cfg.runtime.verbose)
    from sweeps.search import run_sweep
    from sweeps.state import SweepStateError

    try:
        result = run_sweep(cfg)
    except (SweepValidationError, SweepStateError) as exc:
        return _cannot_start(exc)
    except KeyboardInterrupt as exc:  # SweepInterrupted included
        print(f"interrupted: {exc or 'Ctrl-C'}; re-run the same command to resume", file=sys.stderr)
        return 130
    print_result(result)
    return 0


def _cannot_start(exc: Exception) -> int:
    """Exit code 2 with the message alone, no traceback: the sweep cannot run as asked."""
    print(f"error: {exc}", file=sys.stderr)
    return 2
