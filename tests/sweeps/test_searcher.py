"""The Optuna searcher the sweep builds (no Ray cluster needed): samplers, start point, journal."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from sweeps.config import smoke_config
from sweeps.spaces import SPACES


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_searcher_starts_at_the_paper_point_and_writes_the_journal(tmp_path, sampler):
    from sweeps import tune_runner as tr

    journal = str(tmp_path / "optuna_journal.log")
    cfg = smoke_config(sampler=sampler, sampler_seed=3)
    base = cfg.base_run_config()
    searcher = tr._optuna_search(cfg, base=base, mode="min", study_name="s-1234abcd", journal=journal)
    configs = []
    for i in range(4):
        configs.append(searcher.suggest(f"t{i}"))
        searcher.on_trial_complete(f"t{i}", result={"objective": 1.0 - 0.1 * i})
    assert configs[0] == SPACES["hscl"].start_point(base)
    for c in configs:
        for p in SPACES["hscl"].params():
            assert p.low <= c[p.name] <= p.high
    assert len({tuple(sorted(c.items())) for c in configs}) == 4
    study = optuna.load_study(study_name="s-1234abcd",
                              storage=JournalStorage(JournalFileBackend(journal)))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert study.direction.name == "MINIMIZE"

    # the same seed gives the same proposals (seeded sampler; OptunaSearch ignores `seed`)
    again = tr._optuna_search(cfg, base=base, mode="min", study_name="s-other",
                              journal=str(tmp_path / "j2.log"))
    assert again.suggest("t0") == configs[0] and again.suggest("t1") == configs[1]


def test_ghost_trials_left_running_are_failed(tmp_path):
    from sweeps import tune_runner as tr

    journal = str(tmp_path / "optuna_journal.log")
    cfg = smoke_config()
    searcher = tr._optuna_search(cfg, base=cfg.base_run_config(), mode="min", study_name="g",
                                 journal=journal)
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", result={"objective": 1.0})
    searcher.suggest("t1")  # asked, never told: what a killed driver leaves behind
    tr._close_ghost_trials("g", journal)
    study = optuna.load_study(study_name="g", storage=JournalStorage(JournalFileBackend(journal)))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]


def test_optuna_dashboard_reads_the_journal(tmp_path):
    from optuna_dashboard._storage_url import get_storage

    from sweeps import tune_runner as tr

    journal = str(tmp_path / "optuna_journal.log")
    cfg = smoke_config()
    searcher = tr._optuna_search(cfg, base=cfg.base_run_config(), mode="min", study_name="d",
                                 journal=journal)
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", result={"objective": 1.0})
    storage = get_storage(journal)  # what `optuna-dashboard <journal>` does with a file path
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["d"]
