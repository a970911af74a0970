"""`python -m reports`: arguments, errors, lazy imports, and the architecture rule."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reports import cli

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("mmsa_core", "sweeps", "ablations", "torch", "ray")
ALLOWED = ("mmsa_core.record_names",)  # the record's names (stdlib only): docs/ARCHITECTURE.md


def test_cli_writes_requested_formats(store, tmp_path, capsys):
    rc = cli.main(["--tracking-uri", store.uri, "--experiment", "mmsa-synthetic-mosi", "--sweep", "l1-synthetic-s1",
                   "--methods", "--out", str(tmp_path), "--format", "md,html", "--no-log-artifacts"])
    assert rc == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'report.md'}" in out and "logged" not in out
    assert (tmp_path / "report.html").exists() and not (tmp_path / "report.tex").exists()
    text = (tmp_path / "report.md").read_text()
    assert "No FINISHED search-stage run" in text and "Method comparison" in text


def test_cli_errors_name_the_alternatives(store, tmp_path, capsys):
    rc = cli.main(["--tracking-uri", store.uri, "--sweep", "nope", "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no sweep named 'nope'" in err and "hscl-synthetic-s1" in err
    rc = cli.main(["--tracking-uri", store.uri, "--experiment", "mmsa-mosi", "--methods", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "no MLflow experiment named or with id 'mmsa-mosi'" in err
    assert re.search(r"available: .*mmsa-synthetic-mosi", err)
    with pytest.raises(SystemExit):
        cli.main(["--tracking-uri", store.uri, "--out", str(tmp_path)])
    assert "nothing to report" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--methods", "--format", "pdf"])


def test_default_tracking_uri(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.default_tracking_uri() == f"sqlite:///{tmp_path / 'runs' / 'sweeps' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert cli.default_tracking_uri() == "http://127.0.0.1:5000"


def test_cli_choices_match_the_library():
    from reports.stats import TESTS
    from reports.sweep_summary import EVALUATORS

    assert set(cli.TESTS) == set(TESTS) and set(cli.EVALUATORS) == set(EVALUATORS)


def test_help_imports_nothing_heavy():
    code = ("import sys, runpy\nsys.argv = ['reports', '--help']\n"
            "try:\n    runpy.run_module('reports', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = ('mlflow', 'pandas', 'numpy', 'matplotlib', 'scipy', 'optuna')\n"
            "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "--sweep NAME_OR_RUN_ID" in res.stdout and "HEAVY []" in res.stdout


def test_reports_imports_only_its_allowed_layers():
    for path in sorted((ROOT / "reports").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name in ALLOWED:
                    continue
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_public_api_resolves():
    import reports

    for name in reports.__all__:
        assert getattr(reports, name) is not None
