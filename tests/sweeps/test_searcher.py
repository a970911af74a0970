"""The Optuna searcher the sweep builds (no Ray cluster needed): samplers, start point, journal."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from sweeps.config import SAMPLERS, smoke_config
from sweeps.spaces import SPACES


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_searcher_starts_at_the_paper_point_and_writes_the_journal(tmp_path, sampler):
    from sweeps import search

    journal = str(tmp_path / "optuna_journal.log")
    cfg = smoke_config(sampler=sampler, sampler_seed=3)
    base = cfg.base_run_config()
    searcher = search.optuna_search(cfg, base=base, mode="min", study_name="s-1234abcd", journal=journal)
    configs = []
    for i in range(4):
        configs.append(searcher.suggest(f"t{i}"))
        searcher.on_trial_complete(f"t{i}", result={"objective": 1.0 - 0.1 * i})
    assert configs[0] == SPACES["hscl"].start_point(base.to_dict())
    for c in configs:
        for p in SPACES["hscl"].params():
            assert p.low <= c[p.name] <= p.high
    assert len({tuple(sorted(c.items())) for c in configs}) == 4
    study = optuna.load_study(study_name="s-1234abcd",
                              storage=JournalStorage(JournalFileBackend(journal)))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert study.direction.name == "MINIMIZE"

    # the same seed gives the same proposals (seeded sampler; OptunaSearch ignores `seed`)
    again = search.optuna_search(cfg, base=base, mode="min", study_name="s-other",
                              journal=str(tmp_path / "j2.log"))
    assert again.suggest("t0") == configs[0] and again.suggest("t1") == configs[1]
    kind = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler,
            "random": optuna.samplers.RandomSampler}[sampler]
    assert isinstance(again._ot_study.sampler, kind)  # the searcher Tune drives uses the sampler asked for


def test_ghost_trials_left_running_are_failed(tmp_path):
    from sweeps import search

    journal = str(tmp_path / "optuna_journal.log")
    cfg = smoke_config()
    searcher = search.optuna_search(cfg, base=cfg.base_run_config(), mode="min", study_name="g",
                                 journal=journal)
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", result={"objective": 1.0})
    searcher.suggest("t1")  # asked, never told: what a killed driver leaves behind
    search.close_ghost_trials("g", journal)
    study = optuna.load_study(study_name="g", storage=JournalStorage(JournalFileBackend(journal)))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]


def test_optuna_dashboard_reads_the_journal(tmp_path):
    from optuna_dashboard._storage_url import get_storage

    from sweeps import search

    journal = str(tmp_path / "optuna_journal.log")
    cfg = smoke_config()
    searcher = search.optuna_search(cfg, base=cfg.base_run_config(), mode="min", study_name="d",
                                 journal=journal)
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", result={"objective": 1.0})
    storage = get_storage(journal)  # what `optuna-dashboard <journal>` does with a file path
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["d"]


def test_a_trial_the_journal_already_finished_is_not_told_twice(tmp_path):
    """Driver killed after `tell` but before Tune's snapshot: the restored trial runs on."""
    from sweeps import search

    journal = str(tmp_path / "optuna_journal.log")
    cfg = smoke_config()
    searcher = search.optuna_search(cfg, base=cfg.base_run_config(), mode="min", study_name="k",
                                 journal=journal)
    config = searcher.suggest("t0")
    searcher.on_trial_result("t0", {"objective": 1.5, "training_iteration": 1})
    state = str(tmp_path / "searcher-state.pkl")
    searcher.save(state)  # Tune's last snapshot: t0 still running
    searcher.on_trial_complete("t0", result={"objective": 1.0})  # told; then the kill

    # Tune unpickles the searcher it built first (no second enqueue of the start point)
    restored = search.optuna_search(dataclasses.replace(cfg, paper_start=False),
                                 base=cfg.base_run_config(), mode="min", study_name="k",
                                 journal=journal)
    restored.restore(state)
    restored.on_trial_result("t0", {"objective": 0.9, "training_iteration": 2})
    restored.on_trial_complete("t0", result={"objective": 0.9})
    study = optuna.load_study(study_name="k", storage=JournalStorage(JournalFileBackend(journal)))
    assert [(t.state.name, t.value) for t in study.trials] == [("COMPLETE", 1.0)]
    assert study.trials[0].params == {k: config[k] for k in study.trials[0].params}
    assert restored.suggest("t1") is not None  # the search goes on


def test_the_epoch_budget_starts_trials_while_what_may_still_be_trained_fits(tmp_path):
    """Budget 10 epochs, trials of up to 3: a trial starts only while the epochs trained plus what the
    running trials may still train stay below 10 (so the total ends within one trial of the budget);
    an early stop (ASHA) frees what it did not train, and that buys another trial."""
    import pickle

    from sweeps import search

    cfg = smoke_config()
    s = search.optuna_search(cfg, base=cfg.base_run_config(), mode="min", study_name="b",
                             journal=str(tmp_path / "j.log"))
    s.set_epoch_budget(10, 3)
    for t in ("t1", "t2", "t3", "t4"):  # committed 0, 3, 6, 9 < 10: each may start
        assert isinstance(s.suggest(t), dict), t
    assert s.suggest("t5") is None  # 12 committed: not now — a running trial may still stop early
    for t in ("t1", "t2"):  # ASHA stops both after one epoch: 4 epochs freed
        s.on_trial_result(t, {"epoch": 1.0, "objective": 1.0, "training_iteration": 1})
        s.on_trial_complete(t, {"epoch": 1.0, "objective": 1.0, "training_iteration": 1})
    assert isinstance(s.suggest("t5"), dict)  # 2 trained + 3 + 3 running = 8 < 10
    for t in ("t3", "t4", "t5"):
        s.on_trial_result(t, {"epoch": 3.0, "objective": 1.0, "training_iteration": 3})
        s.on_trial_complete(t, {"epoch": 3.0, "objective": 1.0, "training_iteration": 3})
    assert s.epochs_spent() == 11 <= 10 + 3 and s.suggest("t6") == s.FINISHED
    state = pickle.loads(pickle.dumps(s.__dict__))  # what Tune saves of the searcher, and restores
    assert state["trial_epochs"] == {"t1": 1, "t2": 1, "t3": 3, "t4": 3, "t5": 3} and state["budget_epochs"] == 10
