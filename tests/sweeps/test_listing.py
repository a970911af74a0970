"""`python -m sweeps list`: every sweep and study of a real SQLite MLflow store, one line each, with
its child runs counted by status and the headline its parent carries; a missing store exits 2."""

from __future__ import annotations

import subprocess
import sys

from tests.sweeps.conftest import REPO


def _store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("mmsa-synthetic-mosi", artifact_location=str(tmp_path / "artifacts"))
    sweep = client.create_run(exp, run_name="quick", tags={"kind": "sweep", "sweep_name": "quick", "method": "hscl",
                                                           "dataset": "synthetic-mosi", "objective": "best/valid/mae"})
    for name, status in (("a", "FINISHED"), ("b", "FINISHED"), ("c", "FAILED")):
        child = client.create_run(exp, run_name=name, tags={"mlflow.parentRunId": sweep.info.run_id})
        client.set_terminated(child.info.run_id, status)
    client.log_metric(sweep.info.run_id, "rerank/winner_mean", 0.81234)
    client.log_metric(sweep.info.run_id, "final/test/mae", 0.9)
    client.set_terminated(sweep.info.run_id, "FINISHED")
    study = client.create_run(exp, run_name="abl", tags={"kind": "ablation", "sweep_name": "abl", "method": "hscl",
                                                         "dataset": "synthetic-mosi"})
    client.log_metric(study.info.run_id, "full/test/mae", 0.95)
    client.create_run(exp, run_name="stray", tags={"kind": "something-else"})
    return uri


def test_lists_sweeps_and_studies_with_their_runs_and_headline(tmp_path):
    from sweeps.listing import format_rows, list_studies

    uri = _store(tmp_path)
    rows = {r.name: r for r in list_studies(uri)}
    assert set(rows) == {"quick", "abl"}  # the run of another kind is not a study
    assert (rows["quick"].kind, rows["quick"].methods, rows["quick"].status) == ("sweep", "hscl", "FINISHED")
    assert (rows["quick"].runs_finished, rows["quick"].runs) == (2, 3)
    assert rows["quick"].headline == "valid/mae 0.8123 (re-ranked), final test mae 0.9000"
    assert rows["abl"].status == "RUNNING" and rows["abl"].headline == "full test mae 0.9500"
    assert [r.name for r in list_studies(uri)] == ["abl", "quick"]  # newest first
    text = format_rows(list(rows.values()))
    assert text.splitlines()[0].split() == ["name", "kind", "method", "dataset", "status", "runs", "result"]
    out = subprocess.run([sys.executable, "-m", "sweeps", "list", "--tracking-uri", uri], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "quick" in out.stdout and "2/3" in out.stdout, out.stdout + out.stderr


def test_a_missing_store_is_one_line_and_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sweeps", "list", "--storage-path", str(tmp_path / "none")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no MLflow store" in out.stderr and "Traceback" not in out.stderr
