"""Sweep HSCL's loss weights with Ray Tune + Optuna + ASHA, tracked in MLflow, then retrain the
best configuration on several seeds.
"""

import os
import runpy
import sys

if __package__ in (None, ""):  # run as a file (also under `ray job submit`): see sweeps/_script_path.py
    runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_script_path.py"))

from sweeps.cli import main  # noqa: E402  (light: no torch, no Ray)

if __name__ == "__main__":
    sys.exit(main(default_method="hscl", description=__doc__))
