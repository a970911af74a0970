"""Where a model directory is: the folder itself, or the ``model/`` folder `mlflow artifacts download
--artifact-path model --dst-path DIR` leaves in DIR (so the printed commands work as written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mmsa_core.saved_model import CONFIG_FILE, WEIGHTS_FILE, model_dir

REPO = Path(__file__).resolve().parents[2]


def test_a_download_folder_resolves_to_its_model_folder(tmp_path):
    inner = tmp_path / "best_model" / "model"
    inner.mkdir(parents=True)
    (inner / CONFIG_FILE).write_text("{}")
    (inner / WEIGHTS_FILE).write_bytes(b"")
    assert model_dir(tmp_path / "best_model") == inner
    assert model_dir(inner) == inner
    assert model_dir(tmp_path) == tmp_path  # nothing there: named as given, for the error message


def test_predict_names_a_folder_without_a_model(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mmsa_core.predict", "--model", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and f"--model {tmp_path}: not a model directory (no {CONFIG_FILE})" in out.stderr
    assert "Traceback" not in out.stderr
