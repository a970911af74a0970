"""Train one configuration and print its metrics table.

    python -m mmsa_core.train                                   # HSCL, synthetic MOSI, MiniLM
    python -m mmsa_core.train --data path/to/unaligned_50.pkl --seed 1112 --output-json run.json
    python -m mmsa_core.train --text-encoder tiny --max-epochs 2 --set hscl.omega2=0.2 --set hscl.tau=0.3
    python -m mmsa_core.train --method l1 --modalities ta

Test metrics are those of the best *validation* epoch. `--tracking-uri` logs the run to MLflow
(with no value: `sqlite:///<cwd>/mlflow.db`); that is the only path in mmsa_core that touches MLflow,
and it imports it lazily, so the library itself never depends on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from mmsa_core.config import (DATASET_PRESETS, MODALITY_SUBSETS, SYNTHETIC_SOURCES, RunConfig,
                              parse_assignments, shared_fields)
from mmsa_core.methods import method_names

METRIC_COLUMNS = (("acc2_has0", "Acc-2 has0", 100), ("acc2_non0", "Acc-2 non0", 100),
                  ("f1_has0", "F1 has0", 100), ("f1_non0", "F1 non0", 100), ("acc7", "Acc-7", 100),
                  ("acc5", "Acc-5", 100), ("mae", "MAE", 1), ("corr", "Corr", 1))


def build_parser() -> argparse.ArgumentParser:
    d = RunConfig()
    p = argparse.ArgumentParser(prog="python -m mmsa_core.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=method_names(), default=d.method,
                   help="the method to train (default: %(default)s)")
    p.add_argument("--preset", choices=DATASET_PRESETS, default="mosi",
                   help="the method's paper hyper-parameters for CMU-MOSI or CMU-MOSEI (default: %(default)s)")
    p.add_argument("--data", default=None,
                   help=f"MMSA pickle / converted directory, or one of {list(SYNTHETIC_SOURCES)} "
                        f"(default: the preset's synthetic data, {d.data})")
    p.add_argument("--text-encoder", default=d.text_encoder,
                   help="'minilm' (packaged, pretrained), 'tiny' (random, for tests) or a local "
                        "Hugging Face directory (default: %(default)s)")
    p.add_argument("--modalities", choices=MODALITY_SUBSETS, default=d.modalities,
                   help="t = text, a = acoustic, v = visual (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None, help=f"(default: the method's preset; {d.seed} for HSCL)")
    p.add_argument("--max-epochs", type=int, default=None, help=f"(default: preset, {d.max_epochs})")
    p.add_argument("--batch-size", type=int, default=None, help=f"(default: preset, {d.batch_size})")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:N (default: %(default)s)")
    p.add_argument("--faithful", action="store_true",
                   help="HSCL only: reproduce the authors' code quirks (hscl spec §7; = --set hscl.faithful=true)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any configuration key: a shared field or the method's own <method>.<field>, e.g. "
                        f"--set hscl.omega1=0.05 (shared fields: {', '.join(shared_fields())}; "
                        "each method's fields: README, Methods)")
    p.add_argument("--checkpoint-dir", default=None, help="save state every epoch; resume if present")
    p.add_argument("--output-json", default=None, metavar="PATH",
                   help="write the configuration and best-epoch validation and test metrics")
    p.add_argument("--tracking-uri", nargs="?", const="sqlite:///" + os.path.abspath("mlflow.db"),
                   default=os.environ.get("MLFLOW_TRACKING_URI"),
                   help="log the run to MLflow (no value: sqlite:///./mlflow.db; default: "
                        "$MLFLOW_TRACKING_URI if set, else no logging)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    base = RunConfig.paper(args.method, args.preset)
    values: dict[str, object] = {"text_encoder": args.text_encoder, "modalities": args.modalities,
                                 "device": args.device}
    for key, value in (("data", args.data), ("max_epochs", args.max_epochs), ("batch_size", args.batch_size),
                       ("seed", args.seed)):
        if value is not None:
            values[key] = value
    if args.faithful:
        if args.method != "hscl":
            raise ValueError(f"--faithful reproduces HSCL's code quirks; method {args.method!r} has none")
        values["hscl.faithful"] = True
    values.update(parse_assignments(args.set))
    return RunConfig.from_dict(values, base=base, source="command line")


def format_table(title: str, rows: dict[str, dict[str, float]]) -> str:
    """The field's table: accuracies and F1 x100, MAE and Corr as is."""
    header = f"{'split':<8}" + "".join(f"{name:>12}" for _, name, _ in METRIC_COLUMNS)
    lines = [title, header, "-" * len(header)]
    for split, metrics in rows.items():
        lines.append(f"{split:<8}" + "".join(
            f"{metrics[key] * scale:>12.2f}" if scale == 100 else f"{metrics[key]:>12.4f}"
            for key, _, scale in METRIC_COLUMNS))
    return "\n".join(lines)


def _log_to_mlflow(uri: str, result) -> str:
    import mlflow

    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment(f"mmsa-{result.dataset}")
    params = {k: json.dumps(v) if isinstance(v, list) else v for k, v in result.config.to_dict().items()}
    with mlflow.start_run(experiment_id=experiment.experiment_id,
                          run_name=f"{result.config.method}-seed{result.config.seed}",
                          tags={"stage": "single", "method": result.config.method,
                                "dataset": result.dataset, "seed": str(result.config.seed),
                                "stopped_early": str(result.stopped_early).lower()}) as run:
        mlflow.log_params(params)
        for record in result.history:
            mlflow.log_metrics(record.as_metrics(), step=record.epoch)
        return run.info.run_id


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from mmsa_core.data import DataValidationError
    from mmsa_core.trainer import load_run_data, train

    try:
        data = load_run_data(cfg)
    except (DataValidationError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = train(cfg, data, checkpoint_dir=args.checkpoint_dir, progress=not args.quiet)
    print(format_table(f"{cfg.method} on {result.dataset} (seed {cfg.seed}): best validation epoch "
                       f"{result.best_epoch} of {result.epochs_run}",
                       {"valid": result.best_valid, "test": result.best_test}))
    if args.output_json:
        Path(args.output_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output_json).write_text(json.dumps({
            "config": cfg.to_dict(), "dataset": result.dataset, "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
            "valid": result.best_valid, "test": result.best_test}, indent=2))
    if args.tracking_uri:
        run_id = _log_to_mlflow(args.tracking_uri, result)
        print(f"logged to MLflow run {run_id} at {args.tracking_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
