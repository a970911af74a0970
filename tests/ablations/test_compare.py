"""The method comparison: validation before anything runs, and (slow) every registered method
trained over two seeds on a real local Ray, then the report's method table read back."""

from __future__ import annotations

import math

import pytest

from ablations.compare import ComparisonError, build_comparison
from mmsa_core.methods import method_names


def test_all_methods_from_their_paper_presets_with_shared_changes():
    comp = build_comparison(["all"], seeds=(7, 8), values={"max_epochs": 2, "text_encoder": "tiny",
                                                            "hycon.tau": 0.2})
    assert tuple(comp.configs) == method_names()
    assert all(c.max_epochs == 2 and c.text_encoder == "tiny" and c.seed == 7 for c in comp.configs.values())
    assert comp.configs["hycon"].params.tau == 0.2  # a method's own key goes to that method only
    assert comp.configs["hscl"].params.tau == 0.5
    assert comp.configs["clfa"].lr_text == 1e-5  # each method keeps its own paper preset
    assert comp.run_key("hscl", 7) == "hscl-seed7" and comp.name == "compare-synthetic-mosi"


def test_bad_comparisons_are_refused_with_every_problem():
    with pytest.raises(ComparisonError) as err:
        build_comparison(["hscl", "nope", "hscl"], seeds=(1, 1))
    text = str(err.value)
    assert "unknown method 'nope'" in text and "registered methods" in text
    assert "twice" in text and "without duplicates" in text
    with pytest.raises(ComparisonError, match=r"no compared method has these keys"):
        build_comparison(["hscl"], values={"hycon.tau": 0.2})
    with pytest.raises(ComparisonError, match=r"hscl: .*hscl.tau=-1.0 must be > 0"):
        build_comparison(["hscl", "l1"], values={"hscl.tau": -1})


@pytest.mark.slow
def test_every_method_end_to_end_then_the_method_table(ablation_env, tmp_path):
    import sys

    from reports.build import build_report
    from tests.ablations.conftest import REPO
    from tests.processes import run_in_session

    storage = tmp_path / "runs"
    uri = f"sqlite:///{storage}/mlflow.db"
    cmd = [sys.executable, "ablations/compare.py", "--smoke", "--seeds", "1111,1112", "--name", "cmp",
           "--storage-path", str(storage), "--num-cpus", "2", "--verbose", "0",
           "--set", "clfa.reference_encoder=tiny"]
    code, out = run_in_session(cmd, cwd=REPO, env=ablation_env, timeout=900, what="comparison")
    assert code == 0, out[-6000:]
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("mmsa-synthetic-mosi")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("kind") == "comparison"]
    children = [r for r in runs if r.data.tags.get("stage") == "final"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 2 * len(method_names()) and all(c.info.status == "FINISHED" for c in children)
    by_method = {}
    for c in children:
        assert math.isfinite(c.data.metrics["best/test/mae"])
        by_method.setdefault(c.data.tags["method"], {})[int(c.data.tags["seed"])] = c.data.metrics["best/test/mae"]
    assert set(by_method) == set(method_names())

    built = build_report(tracking_uri=uri, experiment="mmsa-synthetic-mosi", methods=True,
                         out_dir=tmp_path / "report", formats=("md",), log_artifacts=False)
    table = next(t for t in built.report.tables() if t.id == "methods")
    assert [r.label for r in table.rows][0] == "hscl" and table.rows[0].reference
    assert {r.label for r in table.rows} == set(method_names())
    for row in table.rows:
        maes = list(by_method[row.label].values())
        assert row.cells["mae"].mean == pytest.approx(sum(maes) / 2, rel=1e-9)
        if not row.reference:
            assert row.cells["mae"].n_pairs == 2
    assert "Method comparison — paired tests" in built.files["md"].read_text()
    # a re-run trains nothing: every pair finished
    code, out = run_in_session(cmd, cwd=REPO, env=ablation_env, timeout=600, what="comparison re-run")
    assert code == 0 and out.count("SKIPPED") == 2 * len(method_names()), out[-3000:]
