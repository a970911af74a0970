"""Golden tests: every number of the generated tables against values computed here from the
known metric values of the fixture store (numpy / scipy), in the model and in report.md."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from reports.tables import METRICS, StatTable, TextTable
from tests.reports._helpers import close_to_print, holm_reference, md_tables, parse_mean_std
from tests.reports.conftest import BEST, CORRUPTIONS, MAX_EPOCHS, RATES, SEARCH, SEEDS, SPACE

SCALE = {m.key: m.scale for m in METRICS}
DEC = {m.key: m.decimals for m in METRICS}
HEADER = {m.key: f"{m.header} {'↑' if m.higher_is_better else '↓'}" for m in METRICS}


def _table(report, id) -> StatTable | TextTable:
    found = [t for t in report.tables() if t.id == id]
    assert found, f"no table {id}; tables: {[t.id for t in report.tables()]}"
    return found[0]


def _expected(values: dict[int, float], metric: str) -> tuple[float, float]:
    arr = np.array(list(values.values())) * SCALE[metric]
    return float(arr.mean()), float(arr.std(ddof=1))


@pytest.fixture(scope="module")
def md(built):
    return md_tables(built.files["md"].read_text())


def test_final_stage_table(built, store, md):
    row = _table(built.report, "final-hscl-synthetic-s1").row("hscl")
    assert row.n == 5
    printed = md["Final-stage results"][0]
    assert printed["Method"] == "hscl" and printed["n"] == "5"
    for m in METRICS:
        mean, std = _expected(store.column("final/hscl-synthetic-s1", m.key), m.key)
        cell = row.cells[m.key]
        assert cell.n == 5
        assert cell.mean == pytest.approx(mean, rel=1e-12) and cell.std == pytest.approx(std, rel=1e-12)
        got = parse_mean_std(printed[HEADER[m.key]])
        assert close_to_print(got["mean"], mean, m.decimals) and close_to_print(got["std"], std, m.decimals)


def test_best_config_is_the_best_trial(built, md):
    _, omega1, omega2, tau, *_ = BEST
    config = {r["Parameter"]: r["Value"] for r in md["Best configuration"]}
    assert config == {"omega1": str(omega1), "omega2": str(omega2), "tau": str(tau)}


def test_ablation_table_deltas_tests_and_holm(built, store, md):
    table = _table(built.report, "ablation-hscl-ablation")
    assert [r.label for r in table.rows] == ["full", "no_supcr_fusion", "no_sim"]
    assert table.rows[0].reference and table.test == "ttest" and table.alpha == 0.05
    printed = {r["Variant"]: r for r in md["Ablation"]}
    tests = {r["Variant"]: r for r in md["Ablation — paired tests"]}
    assert set(tests) == {"no_supcr_fusion", "no_sim"}
    n_sig = n_not = 0
    for m in METRICS:
        ref = store.column("ablation/full", m.key)
        ref_mean, ref_std = _expected(ref, m.key)
        raw = {}
        for v in ("no_supcr_fusion", "no_sim"):
            var = store.column(f"ablation/{v}", m.key)
            seeds = sorted(set(ref) & set(var))
            raw[v] = sps.ttest_rel([var[s] * SCALE[m.key] for s in seeds], [ref[s] * SCALE[m.key] for s in seeds]).pvalue
        adjusted = dict(zip(raw, holm_reference(list(raw.values()))))
        ref_cell = table.row("full").cells[m.key]
        assert ref_cell.mean == pytest.approx(ref_mean, rel=1e-12) and ref_cell.std == pytest.approx(ref_std, rel=1e-12)
        got = parse_mean_std(printed["full (reference)"][HEADER[m.key]])
        assert close_to_print(got["mean"], ref_mean, m.decimals) and got["delta"] is None
        for v in raw:
            mean, std = _expected(store.column(f"ablation/{v}", m.key), m.key)
            cell = table.row(v).cells[m.key]
            assert cell.n_pairs == (4 if v == "no_sim" else 5)
            assert cell.mean == pytest.approx(mean, rel=1e-12) and cell.std == pytest.approx(std, rel=1e-12)
            assert cell.delta == pytest.approx(mean - ref_mean, rel=1e-9)
            assert cell.p == pytest.approx(raw[v], rel=1e-9) and cell.p_adj == pytest.approx(adjusted[v], rel=1e-9)
            assert cell.significant == (adjusted[v] <= 0.05)
            n_sig += cell.significant
            n_not += not cell.significant
            got = parse_mean_std(printed[v][HEADER[m.key]])
            assert close_to_print(got["mean"], mean, m.decimals) and close_to_print(got["std"], std, m.decimals)
            assert close_to_print(got["delta"], mean - ref_mean, m.decimals) and got["sig"] == cell.significant
            pairs, p, p_holm = tests[v][f"{m.header}: n pairs / p / p (Holm)"].rstrip(" †").split(" / ")
            assert int(pairs) == cell.n_pairs
            assert float(p) == pytest.approx(raw[v], rel=5e-3) and float(p_holm) == pytest.approx(adjusted[v], rel=5e-3)
    assert n_sig and n_not, "the fixture should give both significant and non-significant cells"
    assert printed["no_sim"]["n"] == "4"


def test_ablation_wilcoxon(store, tmp_path):
    from reports.build import build_report

    res = build_report(tracking_uri=store.uri, ablations=["hscl-ablation"], out_dir=tmp_path, test="wilcoxon",
                       alpha=0.1, formats=["md"], log_artifacts=False)
    table = _table(res.report, "ablation-hscl-ablation")
    assert table.test == "wilcoxon" and table.alpha == 0.1
    for m in METRICS:
        ref = store.column("ablation/full", m.key)
        raw = {}
        for v in ("no_supcr_fusion", "no_sim"):
            var = store.column(f"ablation/{v}", m.key)
            seeds = sorted(set(ref) & set(var))
            raw[v] = sps.wilcoxon([var[s] for s in seeds], [ref[s] for s in seeds]).pvalue
        adjusted = holm_reference(list(raw.values()))
        for v, adj in zip(raw, adjusted):
            cell = table.row(v).cells[m.key]
            assert cell.p == pytest.approx(raw[v], rel=1e-9) and cell.p_adj == pytest.approx(adj, rel=1e-9)
            assert cell.significant == (adj <= 0.1)
    text = res.files["md"].read_text()
    assert "Wilcoxon signed-rank test" in text and "smallest two-sided exact Wilcoxon p attainable: 0.0625 with 5 pairs, 0.125 with 4 pairs" in text
    assert not (tmp_path / "report.html").exists()


def test_robustness_tables(built, store, md):
    for metric, header in (("mae", "MAE"), ("acc2_non0", "Acc-2 non0")):
        table = _table(built.report, f"robust-hscl-ablation-{metric.replace('_', '-')}")
        printed = {r["Corruption"]: r for r in md[f"Robustness — test {header}"]}
        assert [r.label for r in table.rows] == sorted(CORRUPTIONS)
        clean_mean, clean_std = _expected(store.column("ablation/full", metric), metric)
        for c in CORRUPTIONS:
            row = table.row(c)
            assert row.cells["clean"].mean == pytest.approx(clean_mean, rel=1e-12)
            for r in RATES:
                mean, std = _expected({s: store.robust[(s, c, r, metric)] for s in SEEDS}, metric)
                cell = row.cells[f"r{r:.2f}"]
                assert cell.n == 5
                assert cell.mean == pytest.approx(mean, rel=1e-12) and cell.std == pytest.approx(std, rel=1e-12)
                got = parse_mean_std(printed[c][f"r = {r:.2f} {'↓' if metric == 'mae' else '↑'}"])
                assert close_to_print(got["mean"], mean, DEC[metric]) and close_to_print(got["std"], std, DEC[metric])
    assert not any(t.id.startswith("robust") and "corr" in t.id for t in built.report.tables())


def test_method_comparison_uses_newest_sweep_per_method_and_tests_against_hscl(built, store, md):
    table = _table(built.report, "methods")
    assert [r.label for r in table.rows] == ["hscl", "l1"] and table.rows[0].reference
    printed = {r["Method"].removesuffix(" (reference)"): r for r in md["Method comparison"]}
    assert printed["hscl"]["Source"] == "hscl-synthetic-s1" and printed["l1"]["Source"] == "l1-synthetic-s1"
    tests = {r["Method"]: r for r in md["Method comparison — paired tests"]}
    assert set(tests) == {"l1"}
    for method, group in (("hscl", "final/hscl-synthetic-s1"), ("l1", "final/l1-synthetic-s1")):
        for m in METRICS:
            mean, std = _expected(store.column(group, m.key), m.key)
            cell = table.row(method).cells[m.key]
            assert cell.mean == pytest.approx(mean, rel=1e-12) and cell.std == pytest.approx(std, rel=1e-12)
            got = parse_mean_std(printed[method][HEADER[m.key]])
            assert close_to_print(got["mean"], mean, m.decimals)
    for m in METRICS:  # one other method: Holm over a family of one leaves p unchanged
        ref, other = store.column("final/hscl-synthetic-s1", m.key), store.column("final/l1-synthetic-s1", m.key)
        seeds = sorted(set(ref) & set(other))
        p = sps.ttest_rel([other[s] * SCALE[m.key] for s in seeds], [ref[s] * SCALE[m.key] for s in seeds]).pvalue
        cell = table.row("l1").cells[m.key]
        assert cell.n_pairs == len(seeds) == 5
        assert cell.p == pytest.approx(p, rel=1e-9) and cell.p_adj == pytest.approx(p, rel=1e-9)
        assert cell.delta == pytest.approx(_expected(other, m.key)[0] - _expected(ref, m.key)[0], rel=1e-9)
    # the older hscl sweep has other seeds: not shown, and the report says what differs
    assert ("1 other source(s) not shown: hscl-synthetic-s0 (sweep, hscl) — budget differs from table 1: "
            "seeds 1111, 1112 vs 1111, 1112, 1113, 1114, 1115.") in built.files["md"].read_text()


def test_sweep_summary_numbers(built, md):
    best = md["Best trials"]
    expected = sorted(SEARCH, key=lambda t: t[6])[:5]
    assert [r["Trial"] for r in best] == [t[0] for t in expected]
    assert [float(r["valid MAE ↓"]) for r in best] == pytest.approx([t[6] for t in expected])
    assert [r["Epochs run"] for r in best] == [f"{t[4]}/{MAX_EPOCHS}" for t in expected]
    (compute,) = md["Compute saved by early stopping"]
    run = sum(t[4] for t in SEARCH)
    budget = len(SEARCH) * MAX_EPOCHS
    full = [t for t in SEARCH if t[5] != "scheduler"]
    assert (compute["Trials"], compute["Full fidelity"]) == (str(len(SEARCH)), str(len(full)))
    assert (float(compute["Epochs run"]), float(compute["Full budget"])) == (run, budget)
    assert float(compute["Saved"].rstrip("%")) == pytest.approx(100 * (1 - run / budget), abs=0.05)


def test_importances_on_full_fidelity_trials(built, md):
    import optuna
    from optuna.distributions import FloatDistribution

    text = built.files["md"].read_text()
    full = [t for t in SEARCH if t[5] != "scheduler"]  # t4 (patience) in, untagged t6/t7 in by epochs
    assert len(full) == 5
    assert f"PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator) on the {len(full)} full-fidelity" in text
    printed = {r["Parameter"]: float(r["Importance"]) for r in md["Parameter importances"]}
    # independently: the same study built by hand from the fixture's full-fidelity trials and space
    dists = {k: FloatDistribution(lo, hi, log=log) for k, (lo, hi, log) in SPACE.items()}
    study = optuna.create_study(direction="minimize")
    for t in full:
        study.add_trial(optuna.trial.create_trial(params={"omega1": t[1], "omega2": t[2], "tau": t[3]},
                                                  distributions=dists, value=t[6]))
    want = optuna.importance.get_param_importances(study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    assert set(printed) == set(want)
    for k, v in want.items():
        assert printed[k] == pytest.approx(v, abs=6e-4)


def test_left_out_runs_counted(built):
    report = built.report
    assert report.excluded_total == {"FAILED": 2, "RUNNING": 1}
    assert report.excluded["sweep hscl-synthetic-s1, search stage"] == {"FAILED": 1}
    assert report.excluded["sweep hscl-synthetic-s1, final stage"] == {"RUNNING": 1}
    assert report.excluded["ablation hscl-ablation"] == {"FAILED": 1}
    for fmt in ("md", "html"):
        assert "2 FAILED, 1 RUNNING" in built.files[fmt].read_text()


def test_every_format_states_dataset_ids_and_time(built, store):
    for fmt in ("md", "tex", "html"):
        text = built.files[fmt].read_text()
        assert "SYNTHETIC DATA" in text and "synthetic-mosi (synthetic)" in text
        assert store.experiment_id in text and built.report.generated_at in text
        for name in ("hscl-synthetic-s1", "hscl-ablation"):
            assert store.parents[name] in text


def test_report_logged_as_parent_artifacts(built, store):
    from mlflow import MlflowClient

    client = MlflowClient(store.uri)
    # the sweep and ablation asked for, then the method table's other source (l1's sweep); the older
    # hscl sweep the table does not show gets nothing
    assert built.logged_to == [store.parents[n] for n in ("hscl-synthetic-s1", "hscl-ablation", "l1-synthetic-s1")]
    assert not client.list_artifacts(store.parents["hscl-synthetic-s0"], "report")
    for run_id in built.logged_to:
        names = {f.path.split("/")[-1] for f in client.list_artifacts(run_id, "report")}
        assert {"report.md", "report.tex", "report.html"} <= names
        assert {f.path.name for f in built.report.figures()} <= names
