"""Train one configuration and print its metrics table.

    python -m mmsa_core.train                                   # HSCL, synthetic MOSI, MiniLM
    python -m mmsa_core.train --data path/to/unaligned_50.pkl --seed 1112 --output-json run.json
    python -m mmsa_core.train --text-encoder tiny --max-epochs 2 --set hscl.omega2=0.2 --set hscl.tau=0.3
    python -m mmsa_core.train --method l1 --modalities ta
    python -m mmsa_core.train --config runs/sweeps/hscl-mosi/best_config.json --seed 1116

Test metrics are those of the best *validation* epoch. `--tracking-uri` records the run in MLflow as
the sweeps record theirs; the core never imports MLflow: the run logger is the sweep layer's, found
through the entry point group ``mmsa_core.run_loggers`` (`RUN_LOGGERS`), and it checks that the store
answers before anything trains. Bad input (a key, a value, a device this machine lacks, a store that
does not answer) ends with exit code 2 and one message, before any training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Protocol, Sequence

from mmsa_core.config import MODALITY_SUBSETS, RunConfig, parse_assignments, resolve_preset, shared_fields
from mmsa_core.cli_options import add_training_arguments
from mmsa_core.methods import method_names

RUN_LOGGERS = "mmsa_core.run_loggers"  # entry point group: name -> a class with check(uri) and log(uri, result, data)
METRIC_COLUMNS = (("acc2_has0", "Acc-2 has0", 100), ("acc2_non0", "Acc-2 non0", 100),
                  ("f1_has0", "F1 has0", 100), ("f1_non0", "F1 non0", 100), ("acc7", "Acc-7", 100),
                  ("acc5", "Acc-5", 100), ("mae", "MAE", 1), ("corr", "Corr", 1))


def build_parser() -> argparse.ArgumentParser:
    d = RunConfig()
    p = argparse.ArgumentParser(prog="python -m mmsa_core.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=method_names(), default=None,
                   help=f"the method to train (default: --config's, else {d.method})")
    add_training_arguments(p, flags=("preset", "data", "text_encoder"), defaults={
        "preset": "auto", "data": f"the preset's synthetic data, {d.data}", "text_encoder": d.text_encoder})
    p.add_argument("--modalities", choices=MODALITY_SUBSETS, default=None,
                   help=f"t = text, a = acoustic, v = visual (default: {d.modalities})")
    p.add_argument("--seed", type=int, default=None, help=f"(default: the method's preset; {d.seed} for HSCL)")
    add_training_arguments(p, flags=("max_epochs",), defaults={"max_epochs": f"preset, {d.max_epochs}"})
    p.add_argument("--batch-size", type=int, default=None, help=f"(default: preset, {d.batch_size})")
    p.add_argument("--device", default=None, help=f"auto, cpu, cuda, cuda:N (default: {d.device})")
    for flag, (field, owners, text) in method_switches().items():
        p.add_argument(flag, action="store_true", dest=f"switch_{field}",
                       help=f"{', '.join(owners)}: {text} (= --set <method>.{field}=true)")
    p.add_argument("--config", default=None, metavar="JSON",
                   help="start from a configuration file: a sweep's best_config.json or a run's --output-json "
                        "(the flags and --set above change it)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any configuration key: a shared field or the method's own <method>.<field>, e.g. "
                        f"--set hscl.omega1=0.05 (shared fields: {', '.join(shared_fields())}; "
                        "each method's fields: README, Methods)")
    p.add_argument("--checkpoint-dir", default=None, help="save state every epoch; resume if present")
    p.add_argument("--output-json", default=None, metavar="PATH",
                   help="write the configuration and best-epoch validation and test metrics")
    p.add_argument("--tracking-uri", nargs="?", const="sqlite:///" + os.path.abspath("mlflow.db"),
                   default=os.environ.get("MLFLOW_TRACKING_URI"),
                   help="record the run in MLflow, as the sweeps do (no value: sqlite:///./mlflow.db; default: "
                        "$MLFLOW_TRACKING_URI if set, else not recorded)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def method_switches() -> dict[str, tuple[str, list[str], str]]:
    """``--flag`` -> (field, methods that have it, help) for every method's boolean switches
    (`mmsa_core.methods.base.Method.switches`), e.g. HSCL's ``--faithful``."""
    from mmsa_core.methods import get_method

    out: dict[str, tuple[str, list[str], str]] = {}
    for name in method_names():
        for field, text in get_method(name).switches.items():
            flag = "--" + field.replace("_", "-")
            out.setdefault(flag, (field, [], text))[1].append(name)
    return out


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The configuration the arguments describe: a --config file or the method's preset, then the flags."""
    if args.config:
        base = config_file(args.config)
        method = args.method or base.method
        if method != base.method:
            raise ValueError(f"--config {args.config} configures {base.method!r}, not --method {method}")
    else:
        method = args.method or RunConfig().method
        base = RunConfig.paper(method, resolve_preset(args.preset or "auto", args.data or RunConfig().data))
    values: dict[str, object] = {"method": method}
    for key, value in (("text_encoder", args.text_encoder), ("modalities", args.modalities), ("device", args.device),
                       ("data", args.data), ("max_epochs", args.max_epochs), ("batch_size", args.batch_size),
                       ("seed", args.seed)):
        if value is not None:
            values[key] = value
    for flag, (field, owners, _) in method_switches().items():
        if getattr(args, f"switch_{field}", False):
            if method not in owners:
                raise ValueError(f"{flag} is a switch of {', '.join(owners)}; method {method!r} has none")
            values[f"{method}.{field}"] = True
    values.update(parse_assignments(args.set))
    return RunConfig.from_dict(values, base=base, source="command line")


def config_file(path: str) -> RunConfig:
    """A configuration from a JSON file: ``best_config.json`` (``{"config": {...}}``), a run's
    ``--output-json``, or a flat configuration dict."""
    try:
        with open(os.path.expanduser(path)) as f:
            payload = json.load(f)
    except OSError as exc:
        raise ValueError(f"--config {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config {path}: not JSON ({exc})") from None
    values = payload.get("config", payload) if isinstance(payload, dict) else None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a JSON object (a configuration, or {{\"config\": ...}})")
    return RunConfig.from_dict({k: v for k, v in values.items() if k != "_run"}, source=path)


class RunLogger(Protocol):
    """Where ``--tracking-uri`` records a run (the sweep layer provides the MLflow one)."""

    def check(self, tracking_uri: str) -> None: ...

    def log(self, tracking_uri: str, result: Any, data: Any) -> str: ...


def run_logger() -> RunLogger:
    """The installed run logger (entry point group `RUN_LOGGERS`, name ``mlflow``)."""
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=RUN_LOGGERS) if ep.name == "mlflow"]
    if not found:
        raise ValueError(f"--tracking-uri: no MLflow run logger is installed (entry point group {RUN_LOGGERS}); "
                         "install the project with `pip install -e .`")
    return found[0].load()()


def check_device(device: str) -> None:
    """Refuse a CUDA device on a machine without one, before anything loads."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: this machine has no CUDA device torch can use "
                             f"(torch {torch.__version__}); use --device cpu or auto")


def format_table(title: str, rows: dict[str, dict[str, float]]) -> str:
    """The field's table: accuracies and F1 x100, MAE and Corr as is."""
    header = f"{'split':<8}" + "".join(f"{name:>12}" for _, name, _ in METRIC_COLUMNS)
    lines = [title, header, "-" * len(header)]
    for split, metrics in rows.items():
        lines.append(f"{split:<8}" + "".join(
            f"{metrics[key] * scale:>12.2f}" if scale == 100 else f"{metrics[key]:>12.4f}"
            for key, _, scale in METRIC_COLUMNS))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        check_device(cfg.device)
        logger = None
        if args.tracking_uri:
            logger = run_logger()
            logger.check(args.tracking_uri)  # the store answers, in seconds, before anything trains
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from mmsa_core.data import DataValidationError
    from mmsa_core.trainer import CheckpointMismatchError, load_run_data, train

    try:
        data = load_run_data(cfg)
    except (DataValidationError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = train(cfg, data, checkpoint_dir=args.checkpoint_dir, progress=not args.quiet)
    except CheckpointMismatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(f"{cfg.method} on {result.dataset} (seed {cfg.seed}): best validation epoch "
                       f"{result.best_epoch} of {result.epochs_run}",
                       {"valid": result.best_valid, "test": result.best_test}))
    if args.output_json:
        Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_json).write_text(json.dumps({
            "config": cfg.to_dict(), "dataset": result.dataset, "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
            "valid": result.best_valid, "test": result.best_test}, indent=2))
    if logger is not None:
        run_id = logger.log(args.tracking_uri, result, data)
        print(f"recorded in MLflow: run {run_id} at {args.tracking_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
