"""The robustness report (`python -m reports --robustness NAME`): AUC against a hand computation, and
every number of its tables against numpy on the MLflow metrics of a hand-built store (both protocols).

`check_report` is also used by tests/ablations/test_robustness.py on a store a real study wrote.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.tables import FIELD_ROBUST_METRICS, METRICS, StatTable, trapezoid_auc
from tests.reports._helpers import close_to_print, md_tables, parse_mean_std

SCALE = {m.key: m.scale for m in METRICS}
DEC = {m.key: m.decimals for m in METRICS}
FIELD_RATES = tuple(round(0.1 * i, 1) for i in range(11))
ABSENT = {"": "complete", "a": "A absent", "v": "V absent", "av": "A+V absent"}


# --- AUC ------------------------------------------------------------------------------------


def test_auc_against_hand_computation():
    v = [0.80, 0.78, 0.75, 0.71, 0.68, 0.66, 0.63, 0.60, 0.58, 0.55, 0.50]
    hand = 0.0
    for i in range(10):  # EMT-DLFR: sum(v[:-1] + v[1:]) / 2 * 0.1
        hand += (v[i] + v[i + 1]) / 2 * 0.1
    assert trapezoid_auc(FIELD_RATES, v) == pytest.approx(hand, abs=1e-12)
    assert hand == pytest.approx(0.659, abs=1e-12)  # (0.80 + 0.50) / 2 * 0.1 + 0.1 * 5.94 (sum of v[1:-1])
    assert trapezoid_auc((0.0, 0.5, 1.0), (1.0, 0.5, 0.0)) == pytest.approx(0.5)
    assert trapezoid_auc((1.0, 0.0, 0.5), (0.0, 1.0, 0.5)) == pytest.approx(0.5)  # order of the rates
    assert trapezoid_auc((0.0, 1.0), (0.2, 0.4)) == pytest.approx(0.3)
    assert math.isnan(trapezoid_auc((0.0, 0.5), (1.0, math.nan)))
    assert math.isnan(trapezoid_auc((0.0,), (1.0,)))


# --- expected numbers straight from MLflow -------------------------------------------------


def _children(uri: str, parent_name: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exps, filter_string=f"tags.sweep_name = '{parent_name}' and tags.kind = 'robustness'",
                              max_results=1000)
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parent) == 1
    runs = client.search_runs(exps, filter_string=f"tags.mlflow.parentRunId = '{parent[0].info.run_id}'",
                              max_results=1000)
    kids = [r for r in runs if r.info.status == "FINISHED" and r.data.tags.get("stage") == "robustness"]
    return parent[0], kids


def expected(uri: str, parent_name: str):
    """{method: {"rates": [...], "curve": {metric: (n_seeds, n_rates) array}, "absent": {mods: {m: [..]}}}}."""
    parent, kids = _children(uri, parent_name)
    protocol = parent.data.tags["protocol"]
    out: dict[str, dict] = {}
    for run in kids:
        method, seed = run.data.tags["method"], int(run.data.tags["seed"])
        e = out.setdefault(method, {"points": {}, "absent": {}})
        m = run.data.metrics
        if protocol == "retrain":
            rate = round(float(run.data.tags["rate"]), 2)
            e["points"][(rate, seed)] = {k: m[f"best/test/{k}"] for k in FIELD_ROBUST_METRICS}
        else:
            for key, value in m.items():
                parts = key.split("/")
                if key.startswith("robust/tokens-tav/"):
                    e["points"].setdefault((round(float(parts[2][1:]), 2), seed), {})[parts[4]] = value
                elif key.startswith("robust/absent-"):
                    e["absent"].setdefault(parts[1][len("absent-"):], {}).setdefault(parts[3], {})[seed] = value
            if e["absent"]:
                for k in FIELD_ROBUST_METRICS:
                    e["absent"].setdefault("", {}).setdefault(k, {})[seed] = m[f"best/test/{k}"]
    for e in out.values():
        rates = sorted({r for r, _ in e["points"]})
        seeds = sorted({s for _, s in e["points"]})
        e["rates"], e["seeds"] = rates, seeds
        e["curve"] = {k: np.array([[e["points"][(r, s)][k] for r in rates] for s in seeds]) * SCALE[k]
                      for k in FIELD_ROBUST_METRICS}
    return protocol, out


def _table(report, id) -> StatTable:
    found = [t for t in report.tables() if t.id == id]
    assert found, f"no table {id}; tables: {[t.id for t in report.tables()]}"
    return found[0]


def _close(cell, mean, std):
    assert cell.mean == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert cell.std == pytest.approx(std, rel=1e-9, abs=1e-12)


def check_report(built, uri: str, parent_name: str, *, methods) -> None:
    """Every number of the robustness tables (model and printed Markdown) against numpy."""
    from reports.document import slug

    protocol, exp = expected(uri, parent_name)
    assert sorted(exp) == sorted(methods)
    sid = slug(parent_name)
    md = md_tables(built.files["md"].read_text())
    text = built.files["md"].read_text()
    auc_table = _table(built.report, f"robustness-{sid}-auc")
    assert "Protocol: " in auc_table.caption
    printed_auc = {r["Method"]: r for r in md["Robustness — area under the curve"]}
    for k in FIELD_ROBUST_METRICS:
        spec = next(m for m in METRICS if m.key == k)
        table = _table(built.report, f"robustness-{sid}-{slug(k)}")
        assert table.caption.startswith("Protocol: ")
        assert ("train once" if protocol == "evaluate" else "retrain per rate") in table.caption
        printed = {r["Method"]: r for r in md[f"Robustness — test {spec.header} against the missing rate"]}
        for method, e in exp.items():
            curve = e["curve"][k]  # (seeds, rates), table units
            row = table.row(method)
            assert [c.x for c in table.columns if c.x is not None] == e["rates"]
            for j, rate in enumerate(e["rates"]):
                col = next(c for c in table.columns if c.x == rate)
                _close(row.cells[col.key], curve[:, j].mean(), curve[:, j].std(ddof=1))
                got = parse_mean_std(printed[method][f"{col.header} {col.arrow}".strip()])
                assert close_to_print(got["mean"], curve[:, j].mean(), DEC[k])
                assert close_to_print(got["std"], curve[:, j].std(ddof=1), DEC[k])
            r = np.array(e["rates"])
            aucs = np.array([np.sum((c[:-1] + c[1:]) / 2 * np.diff(r)) for c in curve])  # per seed
            _close(row.cells["auc"], aucs.mean(), aucs.std(ddof=1))
            _close(auc_table.row(method).cells[k], aucs.mean(), aucs.std(ddof=1))
            got = parse_mean_std(printed_auc[method][f"{spec.header} {'↑' if spec.higher_is_better else '↓'}"])
            assert close_to_print(got["mean"], aucs.mean(), DEC[k])
            assert close_to_print(got["std"], aucs.std(ddof=1), DEC[k])
    if protocol == "evaluate":
        absent = _table(built.report, f"robustness-{sid}-absent")
        assert absent.caption.startswith("Protocol: train once")
        printed = md["Robustness — whole-modality drop"]
        rows = {(r.label, r.extra["Test data"]): r for r in absent.rows}
        prows = {(r["Method"], r["Test data"]): r for r in printed}
        for method, e in exp.items():
            assert set(e["absent"]) == set(ABSENT)
            for mods, label in ABSENT.items():
                for k in FIELD_ROBUST_METRICS:
                    vals = np.array(list(e["absent"][mods][k].values())) * SCALE[k]
                    _close(rows[(method, label)].cells[k], vals.mean(), vals.std(ddof=1))
                    spec = next(m for m in METRICS if m.key == k)
                    got = parse_mean_std(prows[(method, label)][f"{spec.header} {'↑' if spec.higher_is_better else '↓'}"])
                    assert close_to_print(got["mean"], vals.mean(), DEC[k])
    else:
        assert not [t for t in built.report.tables() if t.id == f"robustness-{sid}-absent"]
        assert "Whole-modality drop is evaluated by the evaluate protocol" in text
    assert any(f.id == f"robustness-{sid}" for f in built.report.figures())
    assert (built.files["md"].parent / f"robustness-{sid}.png").stat().st_size > 0


# --- a hand-built store -------------------------------------------------------------------------

METHODS = ("hscl", "mmckd")
SEEDS = (111, 1111, 11111)


def _build_store(root) -> str:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("mmsa-synthetic-mosi")
    rng = np.random.default_rng(7)
    now = 1_700_000_000_000

    def parent(name, protocol):
        run = client.create_run(exp, run_name=name, tags={"kind": "robustness", "sweep_name": name,
                                                           "protocol": protocol, "dataset": "synthetic-mosi",
                                                           "method": ",".join(METHODS)})
        client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def child(pid, name, tags, metrics, status="FINISHED"):
        run = client.create_run(exp, run_name=name, tags={"mlflow.parentRunId": pid, "stage": "robustness",
                                                           "dataset": "synthetic-mosi", "sweep_name": "x", **tags})
        client.log_batch(run.info.run_id, metrics=[Metric(k, v, now, 1) for k, v in metrics.items()])
        client.set_terminated(run.info.run_id, status)

    def metric_set(level):
        return {"acc2_non0": level + rng.normal(0, 0.02), "f1_non0": level - 0.01 + rng.normal(0, 0.02),
                "acc7": level - 0.4 + rng.normal(0, 0.02), "mae": 1.6 - level + rng.normal(0, 0.03),
                "corr": level - 0.2 + rng.normal(0, 0.02), "acc5": 0.3, "acc2_has0": level, "f1_has0": level}

    pid = parent("rob-eval", "evaluate")
    for method in METHODS:
        for seed in SEEDS:
            m: dict[str, float] = {}
            for rate in FIELD_RATES:
                m.update({f"robust/tokens-tav/r{rate:.2f}/test/{k}": v for k, v in metric_set(0.8 - 0.3 * rate).items()})
            for mods in ("a", "v", "av"):
                m.update({f"robust/absent-{mods}/test/{k}": v for k, v in metric_set(0.7).items()})
            m.update({f"best/test/{k}": v for k, v in metric_set(0.8).items()})
            child(pid, f"{method}-{seed}", {"method": method, "seed": str(seed), "protocol": "evaluate"}, m)
    child(pid, "failed", {"method": "hscl", "seed": "5", "protocol": "evaluate"},
          {"robust/tokens-tav/r0.00/test/mae": 99.0}, status="FAILED")  # left out
    pid = parent("rob-retrain", "retrain")
    for method in METHODS:
        for rate in (0.0, 0.3, 0.6):
            for seed in SEEDS[:2]:
                m = {f"best/test/{k}": v for k, v in metric_set(0.8 - 0.3 * rate).items()}
                child(pid, f"{method}-{rate}-{seed}", {"method": method, "seed": str(seed), "rate": f"{rate:.2f}",
                                                       "protocol": "retrain"}, m)
    return uri


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return _build_store(tmp_path_factory.mktemp("robust-store"))


@pytest.mark.parametrize("name", ["rob-eval", "rob-retrain"])
def test_robustness_report_golden(store, tmp_path, name):
    from reports.build import build_report

    built = build_report(tracking_uri=store, out_dir=tmp_path, robustness=[name], log_artifacts=False)
    check_report(built, store, name, methods=METHODS)
    if name == "rob-eval":
        assert built.report.excluded_total == {"FAILED": 1}
        assert "trapezoid rule with step 0.1" in _table(built.report, "robustness-rob-eval-auc").caption
    else:
        assert "not the field's 11 rates" in _table(built.report, "robustness-rob-retrain-auc").caption
    for fmt in ("tex", "html"):
        body = built.files[fmt].read_text()
        assert "whole-modality" in body.lower() or name == "rob-retrain"
        assert "Protocol:" in body


def test_robustness_cli(store, tmp_path, capsys):
    from reports.cli import main

    assert main(["--tracking-uri", store, "--robustness", "rob-eval", "--out", str(tmp_path),
                 "--no-log-artifacts", "--format", "md"]) == 0
    assert "Robustness “rob-eval” (evaluate protocol)" in (tmp_path / "report.md").read_text()
    assert main(["--tracking-uri", store, "--robustness", "nope", "--out", str(tmp_path),
                 "--no-log-artifacts"]) == 2
    assert "no robustness named 'nope'" in capsys.readouterr().err
