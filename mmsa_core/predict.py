"""Score a dataset with a saved model: predictions per sample, and the field's metrics where labels exist.

    MLFLOW_TRACKING_URI=URI mlflow artifacts download --run-id RUN --artifact-path model --dst-path best_model
    python -m mmsa_core.predict --model best_model                      # the data it was trained on, test split
    python -m mmsa_core.predict --model best_model --data ~/data/MOSI/unaligned_50.pkl --split valid \\
        --output predictions.csv

The model directory is what the sweeps log as the MLflow artifact ``model/`` of the final stage's best
run (`mmsa_core.saved_model`). ``--data`` defaults to the data the model was trained on (the same file,
the same split sizes); a different file must have the same feature widths. Exit code 2 with one line
for a missing directory, a data file that does not fit, or an unknown split.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmsa_core.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="DIR", help="a model directory (model.safetensors + config.json)")
    p.add_argument("--data", default=None, help="an MMSA pickle / converted directory / synthetic name "
                                                "(default: the data the model was trained on)")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"), help="(default: %(default)s)")
    p.add_argument("--output", default=None, metavar="CSV", help="write id, label, prediction per sample")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default: %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import json

    from mmsa_core.config import RunConfig
    from mmsa_core.saved_model import CONFIG_FILE, load_model, model_dir
    from mmsa_core.train import check_device, format_table

    try:
        check_device(args.device)
        config_path = model_dir(args.model) / CONFIG_FILE
        if not config_path.is_file():
            raise ValueError(f"--model {args.model}: not a model directory (no {CONFIG_FILE})")
        config = RunConfig.from_dict(json.loads(config_path.read_text()), source=str(config_path))
        from mmsa_core.data import DataValidationError
        from mmsa_core.trainer import load_run_data

        try:
            data = load_run_data(config if args.data is None else config.replace(data=args.data))
        except (DataValidationError, FileNotFoundError) as exc:
            raise ValueError(str(exc)) from None
        loaded = load_model(args.model, data, device=args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from mmsa_core.metrics import regression_metrics

    split = data.splits[args.split]
    pred, labels = loaded.predict(split)
    metrics = regression_metrics(pred, labels)
    print(format_table(f"{config.method} model from {args.model} on {data.name} ({args.split}, {len(labels)} samples)",
                       {args.split: metrics}))
    logged = (loaded.info.get("best_test") or {}).get("mae") if args.split == "test" and args.data is None else None
    if logged is not None:
        print(f"test MAE as logged when the model was trained: {logged:.6f} (now {metrics['mae']:.6f})")
    if args.output:
        with open(args.output, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "label", "prediction"])
            for sample_id, label, value in zip(split.ids, labels, pred):
                writer.writerow([sample_id, f"{float(label):.6g}", f"{float(value):.6g}"])
        print(f"predictions: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
