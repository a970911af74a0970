"""Every section states its budget, and smoke / cut / random-encoder runs carry a banner on the first screen.

Stores: `store` (synthetic data, minilm, full budget: no banner), `mosi_store` (a real file; a
--smoke sweep that cut it to 128/64/64, a robustness smoke) and `issue_store` (the file first logged
cut, so MLflow's one profile of it cannot tell the file's own sizes).
"""

from __future__ import annotations

from html import escape

import pandas as pd
import pytest

from reports import runs
from reports.budget import budget_of
from tests.reports._helpers import md_tables
from tests.reports.conftest import (ASHA, MAX_EPOCHS, MOSI_DIGEST, MOSI_EXPERIMENT, MOSI_FILE, SEARCH, SEEDS,
                                    SYNTHETIC_DIGEST)

SMOKE_BANNER = ("SMOKE RUN — sweep “hscl-mosi-smoke”: tiny random text encoder, 3 epochs, splits cut to 128/64/64 "
                "(train/valid/test; test 64 of the file's 686), 3 search trials, 2 seeds: not a result.")


def _budget_rows(report, table_id: str) -> dict[str, str]:
    (table,) = [t for t in report.tables() if t.id == table_id]
    return dict(table.rows)


@pytest.fixture(scope="module")
def smoke_report(mosi_store, tmp_path_factory):
    from reports.build import build_report

    return build_report(tracking_uri=mosi_store.uri, experiment=MOSI_EXPERIMENT, sweeps=["hscl-mosi-smoke"],
                        robustness=["robust-l1-smoke"], out_dir=tmp_path_factory.mktemp("smoke"), log_artifacts=False)


def test_smoke_sweep_on_a_cut_real_file_says_so_first(smoke_report):
    report = smoke_report.report
    assert report.banners[0] == SMOKE_BANNER
    sweep = next(s for s in report.sections if s.id == "sweep-hscl-mosi-smoke")
    assert sweep.banners == [SMOKE_BANNER] and sweep.blocks[0].id == "budget-hscl-mosi-smoke"
    assert _budget_rows(report, "budget-hscl-mosi-smoke") == {
        "Data": f"mosi_clean (file: {MOSI_FILE})",
        "Data digest": MOSI_DIGEST,
        # the sizes the loader cut the file to, and the file's own (from the comparison, which loaded it whole)
        "Splits used (train/valid/test)": "128/64/64 (cut) — the file has 1284/229/686",
        "Text encoder": "tiny (random weights, not pre-trained)",
        "Epochs": "max_epochs 3; ran 2–3",
        "Seeds": "1111, 1112 (2)",
        "Search": "Optuna TPE (seed 0); 3 trials asked for, 3 finished (ran 1–3 epochs)",
        "ASHA": "grace_period 1, reduction_factor 2, max_t 3",
        "Smoke run": "yes (sweep tag smoke=true)",
    }
    # the first screen: the banner comes right after the title, before the metadata and any table
    md = smoke_report.files["md"].read_text().splitlines()
    assert md[0] == "# MMSA report — mosi_clean" and md[2] == f"> **{SMOKE_BANNER}**"
    html = smoke_report.files["html"].read_text()
    banner = html.index(f'id="budget-banner-1">{escape(SMOKE_BANNER)}')
    assert banner < html.index('id="report-meta"') < html.index("<table id=")
    tex = smoke_report.files["tex"].read_text()
    assert tex.index("SMOKE RUN") < tex.index(r"\begin{tabular}")


def test_robustness_smoke_banner_from_its_params(smoke_report):
    """A study has no smoke tag: the tiny encoder on cut splits is its --smoke signature."""
    banner = ("SMOKE RUN — robustness study “robust-l1-smoke”: tiny random text encoder, 2 epochs, splits cut to "
              "128/64/64 (train/valid/test; test 64 of the file's 686), 3 seeds: not a result.")
    assert smoke_report.report.banners == [SMOKE_BANNER, banner]
    rows = _budget_rows(smoke_report.report, "budget-robust-l1-smoke")
    assert rows["Seeds"] == "111, 1111, 11111 (3)" and rows["Epochs"] == "max_epochs 2; ran 2"
    assert rows["Smoke run"] == "yes (tiny encoder on set split sizes)" and "Search" not in rows


def test_every_section_of_a_full_budget_report_states_it(built):
    """Synthetic data, minilm, nothing cut: a budget per section and no banner but the synthetic one."""
    report = built.report
    assert report.banners == []
    common = {"Data": "synthetic-mosi (synthetic)", "Data digest": SYNTHETIC_DIGEST,
              "Splits used (train/valid/test)": "1284/229/686", "Text encoder": "minilm",
              "Epochs": f"max_epochs {MAX_EPOCHS}; ran {MAX_EPOCHS}",
              "Seeds": f"{', '.join(map(str, SEEDS))} ({len(SEEDS)})"}
    sweep = _budget_rows(report, "budget-hscl-synthetic-s1")
    epochs = sorted(t[4] for t in SEARCH)
    assert sweep == {**common, "Search": f"Optuna TPE (seed 0); {len(SEARCH) + 1} trials asked for, {len(SEARCH)} "
                                         f"finished (ran {epochs[0]}–{epochs[-1]} epochs)",
                     "ASHA": ", ".join(f"{k} {v}" for k, v in ASHA.items())}
    assert _budget_rows(report, "budget-hscl-ablation") == common
    assert _budget_rows(report, "methods-budget") == common
    for section in report.sections:
        if section.id.startswith(("sweep-", "ablation-", "methods")):
            assert [b for b in section.blocks if getattr(b, "title", "") == "Budget"], section.id
    assert "SMOKE RUN" not in built.files["md"].read_text()
    assert md_tables(built.files["md"].read_text())["Budget"][0] == {"Item": "Data", "Value": common["Data"]}


def test_file_sizes_unknown_when_a_cut_run_logged_the_file_first(issue_store):
    """MLflow keeps one dataset per (name, digest) with the first run's profile: the robustness smoke
    logged the file cut to 128/64/64 first, so the whole-file runs' profile says 128/64/64 too."""
    frame = runs.tidy(runs.search(issue_store.uri, issue_store.experiment_id, "tags.stage = 'final'"))
    assert set(frame["data_splits"]) == {(128, 64, 64)}  # what MLflow returns for the uncut sweeps
    assert runs.file_splits(issue_store.uri, issue_store.experiment_id, MOSI_DIGEST) is None
    b = budget_of(frame, scope="x", file_splits=lambda d: runs.file_splits(issue_store.uri,
                                                                           issue_store.experiment_id, d))
    assert b.splits == ("whole file (sizes not recorded)",) and not b.truncated and b.banner() is None


def test_file_sizes_known_when_a_whole_file_run_logged_it_first(mosi_store):
    assert runs.file_splits(mosi_store.uri, mosi_store.experiment_id, MOSI_DIGEST) == (1284, 229, 686)
    assert runs.file_splits(mosi_store.uri, mosi_store.experiment_id, "0000000000000000") is None


def _frame(*, encoder: str, sizes: tuple[int, int, int], source_type: str, epochs: int = 3, n: int = 2):
    return pd.DataFrame({
        "seed": pd.array([1111 + i for i in range(n)], dtype="Int64"), "data_name": ["d"] * n,
        "data_digest": ["abc"] * n, "data_source": ["data/d.pkl" if source_type == "local" else "synthetic-mosi"] * n,
        "data_source_type": [source_type] * n, "data_splits": [(1284, 229, 686)] * n,
        "params.text_encoder": [encoder] * n, "params.max_epochs": [epochs] * n,
        "params.synthetic_train": [sizes[0]] * n, "params.synthetic_valid": [sizes[1]] * n,
        "params.synthetic_test": [sizes[2]] * n, "metrics.epochs_run": [float(epochs)] * n})


def test_banner_names_what_it_is():
    none = (0, 0, 0)
    assert budget_of(_frame(encoder="minilm", sizes=none, source_type="local"), scope="s").banner() is None
    tiny = budget_of(_frame(encoder="tiny", sizes=none, source_type="local", epochs=1), scope="ablation “a”")
    assert tiny.banner() == ("RANDOM TEXT ENCODER — ablation “a”: tiny random text encoder, 1 epoch, 2 seeds: "
                             "not a result.")
    cut = budget_of(_frame(encoder="minilm", sizes=(128, 64, 64), source_type="local", epochs=20), scope="s",
                    file_splits=lambda digest: None)
    assert cut.banner() == ("TRUNCATED SPLITS — s: 20 epochs, splits cut to 128/64/64 (train/valid/test; the file's "
                            "own sizes are not in this MLflow experiment), 2 seeds: not a result.")
    # synthetic data generated small is a smaller budget, not a cut file; with the tiny encoder it is a smoke run
    small = budget_of(_frame(encoder="minilm", sizes=(128, 64, 64), source_type="synthetic"), scope="s")
    assert small.banner() is None and small.splits == ("1284/229/686 (generated)",) and not small.truncated
    smoke = budget_of(_frame(encoder="tiny", sizes=(96, 48, 48), source_type="synthetic", epochs=1), scope="s")
    assert smoke.banner() == ("SMOKE RUN — s: tiny random text encoder, 1 epoch, generated splits 96/48/48, 2 seeds: "
                              "not a result.")
