"""`--csv DIR`: one file per table, named by its id; numbers as numbers, mean and std apart."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from reports import cli
from reports.tables import METRICS
from tests.reports.conftest import DEGENERATE_METHOD, EXPERIMENT, SEARCH, SEEDS


def _read(path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_every_table_is_a_csv_named_by_its_id(mosi_methods):
    report = mosi_methods.report
    assert set(mosi_methods.csv) == {t.id for t in report.tables()}
    for t in report.tables():
        path = mosi_methods.csv[t.id]
        assert path.name == f"{t.id}.csv" and path.parent.name == "csv"
        assert len(_read(path)) == len(t.rows)


def test_stat_table_csv_holds_the_model_numbers(mosi_methods):
    table = next(t for t in mosi_methods.report.tables() if t.id == "methods")
    rows = {r["Method"]: r for r in _read(mosi_methods.csv["methods"])}
    assert list(rows) == [r.label for r in table.rows]
    for r in table.rows:
        got = rows[r.label]
        assert got["reference"] == ("true" if r.reference else "false")
        assert got["degenerate"] == ("true" if r.label == DEGENERATE_METHOD else "false")
        assert int(got["n"]) == r.n and got["Source"] == "compare-mosi"
        for m in METRICS:
            cell = r.cells[m.key]
            assert float(got[f"{m.key}_mean"]) == cell.mean  # full precision, table units
            assert float(got[f"{m.key}_std"]) == cell.std and int(got[f"{m.key}_n"]) == cell.n
            if r.reference:
                assert got[f"{m.key}_delta"] == got[f"{m.key}_p"] == got[f"{m.key}_significant"] == ""
            else:
                assert float(got[f"{m.key}_delta"]) == cell.delta and int(got[f"{m.key}_n_pairs"]) == cell.n_pairs
                assert float(got[f"{m.key}_p"]) == cell.p and float(got[f"{m.key}_p_holm"]) == cell.p_adj
                assert got[f"{m.key}_significant"] == ("true" if cell.significant else "false")
    tests = {r["Method"]: r for r in _read(mosi_methods.csv["methods-tests"])}
    cell = table.row("l1").cells["mae"]
    assert float(tests["l1"]["mae_p_holm"]) == cell.p_adj and int(tests["l1"]["mae_n_pairs"]) == 3


def test_cli_csv_on_a_sweep(store, tmp_path, capsys):
    out = tmp_path / "tables"
    rc = cli.main(["--tracking-uri", store.uri, "--experiment", EXPERIMENT, "--sweep", "hscl-synthetic-s1",
                   "--out", str(tmp_path / "report"), "--format", "md", "--no-log-artifacts", "--csv", str(out)])
    assert rc == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(["budget-hscl-synthetic-s1.csv", "final-hscl-synthetic-s1.csv",
                            "final-hscl-synthetic-s1-config.csv", "sweep-hscl-synthetic-s1-best-trials.csv",
                            "sweep-hscl-synthetic-s1-importances.csv", "sweep-hscl-synthetic-s1-compute.csv"])
    assert f"wrote {len(files)} CSV table(s) to {out}" in capsys.readouterr().out
    (final,) = _read(out / "final-hscl-synthetic-s1.csv")
    for m in METRICS:
        vals = np.array(list(store.column("final/hscl-synthetic-s1", m.key).values())) * m.scale
        assert float(final[f"{m.key}_mean"]) == pytest.approx(vals.mean(), rel=1e-12)
        assert float(final[f"{m.key}_std"]) == pytest.approx(vals.std(ddof=1), rel=1e-12)
        assert int(final[f"{m.key}_n"]) == len(SEEDS)
    best = _read(out / "sweep-hscl-synthetic-s1-best-trials.csv")
    ranked = sorted(SEARCH, key=lambda t: t[6])[:5]
    assert [r["trial"] for r in best] == [t[0] for t in ranked]
    assert [float(r["valid_mae"]) for r in best] == pytest.approx([t[6] for t in ranked])
    assert [(float(r["epochs_run"]), float(r["max_epochs"])) for r in best] == [(t[4], 20.0) for t in ranked]
    assert [r["full_fidelity"] for r in best] == ["true" if t[5] != "scheduler" else "false" for t in ranked]
    assert [float(r["omega1"]) for r in best] == [t[1] for t in ranked]
    (compute,) = _read(out / "sweep-hscl-synthetic-s1-compute.csv")
    run, budget = sum(t[4] for t in SEARCH), len(SEARCH) * 20
    assert float(compute["saved_fraction"]) == pytest.approx(1 - run / budget) and int(compute["trials"]) == len(SEARCH)
    importances = _read(out / "sweep-hscl-synthetic-s1-importances.csv")
    assert sum(float(r["importance"]) for r in importances) == pytest.approx(1.0)
    budget_rows = {r["Item"]: r["Value"] for r in _read(out / "budget-hscl-synthetic-s1.csv")}
    assert budget_rows["Text encoder"] == "minilm"


def test_text_cells_become_numbers_where_they_are_numbers():
    from reports.export_csv import text_rows
    from reports.tables import TextTable

    t = TextTable(id="t", title="T", caption="", headers=("a", "b", "c", "d"),
                  rows=(("0.830", "20", "n/a", "tav"), ("-1e-05", "–", "3.5%", "x y")))
    headers, rows = text_rows(t)
    assert headers == ["a", "b", "c", "d"]
    assert rows == [[0.83, 20, None, "tav"], [-1e-05, None, "3.5%", "x y"]]
