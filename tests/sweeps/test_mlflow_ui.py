"""The MLflow UI a person opens after a sweep, in a real headless browser (Debian's `chromium`).

A small `--smoke` sweep, then `mlflow ui` on its SQLite store (127.0.0.1, a free port, stopped by
PID): the URL the sweep prints opens the experiment's runs table — not MLflow 3's GenAI overview —
with the dataset in the Dataset column; MlflowClient shows every run's dataset input (same name
and digest), the model-training experiment tag and the parent's description. Without chromium
the browser part skips (fails under CI), as in tests/reports/test_html_chromium.py.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.processes import free_port, http_ok, kill_session
from tests.sweeps.conftest import run_cli, store, wait_for




@pytest.mark.slow
def test_ui_opens_on_the_runs_table_with_datasets(sweep_env, tmp_path):
    from tests.reports.test_html_chromium import _chromium, _png_size, _run

    runs = tmp_path / "runs"
    out = run_cli(["--smoke", "--num-cpus", "2", "--num-samples", "2", "--max-epochs", "2",
                   "--final-seeds", "1111", "--storage-path", str(runs)], sweep_env,
                  log=tmp_path / "sweep.log")
    assert out.returncode == 0, out.stdout[-5000:]
    uri = f"sqlite:///{runs}/mlflow.db"
    client, parents, search, final = store(uri)
    exp = client.get_experiment_by_name("mmsa-synthetic-mosi")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    (parent,) = parents
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("hscl sweep on synthetic-mosi (train/valid/test 128/64/64): 2 trials")
    assert "Final test (1 seeds): mae " in note
    digests = set()
    for run in [parent, *search, *final]:
        inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert len(inputs) == 1, (run.info.run_name, inputs)
        ds = inputs[0].dataset
        assert ds.name == "synthetic-mosi" and ds.source_type == "synthetic"
        assert '"splits": {"train": 128, "valid": 64, "test": 64}' in ds.profile
        digests.add(ds.digest)
        if run is not parent:
            assert run.data.tags["dataset_digest"] == ds.digest
    assert len(digests) == 1 and len(search) == 2 and len(final) == 1

    # the URL the sweep printed, with the port of our server
    (url_line,) = [ln for ln in out.stdout.splitlines() if "then open http://127.0.0.1:5000/" in ln]
    path = url_line.split("http://127.0.0.1:5000/", 1)[1].strip()
    assert path == f"#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"

    exe = _chromium()
    port = free_port()
    server = subprocess.Popen(["mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                               "--port", str(port)], env=sweep_env, stdout=open(tmp_path / "ui.log", "w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 120, "mlflow ui")
        page = f"http://127.0.0.1:{port}/{path}"
        budget = "--virtual-time-budget=20000"
        dom = _run(exe, tmp_path / "p1", budget, "--dump-dom", page).stdout
        shot = tmp_path / "ui.png"
        _run(exe, tmp_path / "p2", budget, "--window-size=1400,900", f"--screenshot={shot}", page)
    finally:
        kill_session(server.pid)  # by PID: the server and its workers
    (tmp_path / "ui.html").write_text(dom)
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "Run Name" in text and "Dataset" in text, text[:3000]  # the runs table's header
    assert parent.info.run_name in text
    assert re.search(r"synthetic-mosi\s*\(\s*" + next(iter(digests)), text), text[:3000]  # Dataset column
    assert "Detect Issues" not in text and "No data available for the selected time range" not in text
    assert _png_size(shot) == (1400, 900)
