"""The simulated search benchmark's pieces (benchmarks/search_sim.py) on a tiny synthetic table:
no training, no table generation, a few seconds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import search_sim as S
from mmsa_core.methods.space import Param

PARAMS = (Param("a", 1e-3, 1.0, True), Param("b", 0.0, 0.3, False))


def toy_table(tmp_path, n_cfg: int = 12, epochs: int = 16, chunk: int = 4, kv: int = 4, kt: int = 2,
              extra_rows=(0, 1), seed: int = 0) -> S.Table:
    """A table file in the layout `make_search_table.py` writes, with made-up learning curves."""
    rng = np.random.default_rng(seed)
    unit = rng.random((n_cfg, len(PARAMS)))
    values = np.stack([1e-3 * 1000 ** unit[:, 0], 0.3 * unit[:, 1]], axis=1)
    rows, seeds = [], []
    for r in range(n_cfg):
        rows.append(r), seeds.append(1111)
    for r in extra_rows:
        for s in (1112, 1113):
            rows.append(r), seeds.append(s)
    level = 0.8 + 0.4 * unit[:, 0]  # the first parameter decides the final MAE
    ep = np.arange(1, epochs + 1)
    valid = np.empty((len(rows), epochs, kv))
    test = np.empty((len(rows), epochs, kt))
    for i, (r, s) in enumerate(zip(rows, seeds)):
        curve = level[r] + 0.5 * np.exp(-ep / 4)
        valid[i] = (curve[:, None] + rng.normal(0, 0.02, (epochs, kv))) * chunk
        test[i] = (curve[:, None] + rng.normal(0, 0.02, (epochs, kt))) * chunk
    meta = {"space": [{"name": p.name, "low": p.low, "high": p.high, "log": p.log} for p in PARAMS],
            "chunk": chunk, "base_seed": 1111, "sizes": {"train": 8, "valid": kv * chunk, "test": kt * chunk},
            "extra_rows_top": list(extra_rows), "extra_rows_random": []}
    path = tmp_path / "toy.npz"
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), unit=unit, values=values,
                        run_row=np.array(rows), run_seed=np.array(seeds), valid_abs_err=valid.astype(np.float32),
                        test_abs_err=test.astype(np.float32), train_seconds=np.ones((len(rows), epochs)),
                        eval_seconds=np.ones((len(rows), epochs)))
    return S.Table.load(path)


# --- ASHA -------------------------------------------------------------------------------------


def test_asha_rungs_match_ray():
    from ray.tune.schedulers.async_hyperband import _Bracket

    for grace, rf, max_t in [(2, 3, 16), (4, 3, 16), (8, 3, 16), (1, 2, 3), (16, 3, 16)]:
        ours = S.AshaRule(max_t, grace, rf)
        ray = _Bracket(grace, max_t, rf, 0)
        assert [m for m, _ in ours.rungs] == [m for m, _ in ray._rungs]
    assert S.AshaRule(16, 2, 3).milestones == [2, 6]
    assert S.AshaRule(16, 4, 3).milestones == [4, 12]
    assert S.AshaRule(16, 8, 3).milestones == [8]


def test_asha_hand_computed_example():
    """grace 2, rf 3, max_t 16: rungs at 2 and 6; the cutoff at a rung is the 66.7th percentile of
    the rewards (−MAE) recorded there before this trial (linear interpolation)."""
    asha = S.AshaRule(16, 2, 3)
    assert asha.on_result("a", 1, 1.00) == S.CONTINUE  # below every rung
    assert asha.on_result("a", 2, 1.00) == S.CONTINUE  # first at rung 2: nothing to compare with
    assert asha.on_result("b", 2, 0.90) == S.CONTINUE  # cutoff = −1.00; −0.90 ≥ −1.00
    # rung 2 holds −1.00, −0.90: 66.7th percentile = −1.00 + 0.667·0.10 = −0.9333; −0.95 < it -> STOP
    assert asha.cutoff(asha.rungs[-1][1]) == pytest.approx(-1.0 + (2 / 3) * 0.1)
    assert asha.on_result("c", 2, 0.95) == S.STOP
    # −0.92 ≥ cutoff(−1.00, −0.90, −0.95) = −0.9333 + ... -> continue
    assert asha.cutoff(asha.rungs[-1][1]) == pytest.approx(np.percentile([-1.0, -0.9, -0.95], 200 / 3))
    assert asha.on_result("d", 2, 0.92) == S.CONTINUE
    assert asha.on_result("b", 3, 0.80) == S.CONTINUE  # already recorded at rung 2, not yet at 6
    assert asha.on_result("b", 6, 0.80) == S.CONTINUE  # first at rung 6
    assert asha.on_result("d", 6, 0.85) == S.STOP  # worse than the only value at rung 6
    assert asha.on_result("b", 16, 0.70) == S.STOP  # max_t


def test_asha_agrees_with_ray_on_random_streams():
    """The same decisions as Ray's `_Bracket` (stop_last_trials) on interleaved random results."""
    from ray.tune.schedulers.async_hyperband import _Bracket

    class T:
        def __init__(self, i):
            self.trial_id = i

    rng = np.random.default_rng(3)
    for grace in (1, 2, 4, 8):
        ours, ray = S.AshaRule(16, grace, 3), _Bracket(grace, 16, 3, 0)
        epochs = {i: 0 for i in range(12)}
        alive = set(epochs)
        while alive:
            i = int(rng.choice(sorted(alive)))
            epochs[i] += 1
            mae = float(rng.normal(1.0, 0.1))
            a = ours.on_result(i, epochs[i], mae)
            b = "STOP" if epochs[i] >= 16 else ray.on_result(T(i), epochs[i], -mae)
            assert a == b.upper()
            if a == S.STOP:
                alive.discard(i)


# --- nearest configuration, searchers --------------------------------------------------------


def test_nearest_row_uses_the_log_scale():
    unit = np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    # a = 0.03 is 0.49 of the way from 1e-3 to 1 on the log scale (0.03 of the way linearly)
    point = S.to_unit({"a": 0.03, "b": 0.15}, PARAMS)
    assert point == pytest.approx([math.log(30) / math.log(1000), 0.5])
    assert S.nearest_row(unit, point) == 1
    assert S.nearest_row(unit, S.to_unit({"a": 1e-3, "b": 0.0}, PARAMS)) == 0
    assert S.nearest_row(unit, S.to_unit({"a": 0.9, "b": 0.29}, PARAMS)) == 2


def test_random_draws_are_optunas_random_sampler(tmp_path):
    import optuna

    from sweeps.spaces import define_by_run

    view = toy_table(tmp_path).view()
    ours = S.RandomSearcher(view, 5)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    for _ in range(6):
        trial = study.ask()
        define_by_run(trial, params=view.params)
        assert ours.draw() == trial.params
        study.tell(trial, 1.0)


def test_same_seed_same_draws_and_tpe_startup_shares_them(tmp_path):
    view = toy_table(tmp_path).view()
    a = [S.RandomSearcher(view, 3).draw() for _ in range(1)]
    r1, r2 = S.RandomSearcher(view, 3), S.RandomSearcher(view, 3)
    assert [r1.draw() for _ in range(5)] == [r2.draw() for _ in range(5)]
    assert a[0] != S.RandomSearcher(view, 4).draw()
    # the paper configuration first spends no draw: trial k + 1 is the plain search's trial k
    plain, first = S.RandomSearcher(view, 3), S.RandomSearcher(view, 3, first_row=7)
    assert first.ask()[1] == 7
    assert [first.ask()[1] for _ in range(4)] == [plain.ask()[1] for _ in range(4)]
    # TPE(seed)'s start-up trials after the enqueued paper configuration are random search's draws
    paper = {p.name: float(v) for p, v in zip(view.params, [0.01, 0.1])}
    tpe = S.TpeSearcher(view, 3, n_startup_trials=10, paper_start=True, paper_values=paper)
    rnd = S.RandomSearcher(view, 3)
    handle, _ = tpe.ask()
    assert handle.params == pytest.approx(paper)
    tpe.tell(handle, 1.0)
    for _ in range(4):
        handle, row = tpe.ask()
        assert handle.params == rnd.draw()
        tpe.tell(handle, 1.0)


def test_simulation_is_reproducible_and_spends_exactly_the_budget(tmp_path):
    view = toy_table(tmp_path).view()
    runs = []
    for _ in range(2):
        trace = S.simulate(view, S.RandomSearcher(view, 1), S.AshaRule(16, 2, 3), budget=100, workers=2)
        runs.append(trace)
    assert runs[0].spent == 100 and len(runs[0].curve) == 100
    np.testing.assert_array_equal(runs[0].curve, runs[1].curve)
    assert sum(t["epochs"] for t in runs[0].trials) == 100
    # full-length random search: 2 workers, 16 epochs each -> 100 epochs = 6 full trials + 2 cut at 2
    fifo = S.simulate(view, S.RandomSearcher(view, 1), S.FifoRule(16), budget=100, workers=2)
    assert [t["epochs"] for t in fifo.trials] == [16] * 6 + [2, 2]
    # the incumbent is the best objective reported so far; the curve holds its test MAE
    best = min(fifo.trials, key=lambda t: t["objective"])
    assert fifo.incumbent_objective == pytest.approx(best["objective"])
    assert fifo.curve[-1] == pytest.approx(view.final_test[fifo.incumbent_row])


def test_table_view_objective_and_final_test(tmp_path):
    table = toy_table(tmp_path)
    view = table.view()
    valid = table.valid_abs_err.sum(axis=2) / (4 * 4)
    test = table.test_abs_err.sum(axis=2) / (2 * 4)
    r0 = [i for i, (r, s) in enumerate(zip(table.run_row, table.run_seed)) if r == 0]
    np.testing.assert_allclose(view.objective[0], np.minimum.accumulate(valid[r0[0]]), rtol=1e-6)
    expected = np.mean([test[i, np.argmin(valid[i])] for i in r0])  # mean over the 3 seeds
    assert view.final_test[0] == pytest.approx(expected, rel=1e-6)
    small = table.view(valid_size=8)  # the first 2 chunks
    np.testing.assert_allclose(small.objective[5], np.minimum.accumulate(
        table.valid_abs_err[5, :, :2].sum(axis=1) / 8), rtol=1e-6)
    with pytest.raises(ValueError):
        table.view(valid_size=6)


def test_rerank_uses_the_tables_extra_seeds(tmp_path):
    view = toy_table(tmp_path).view()
    trials = [{"row": 0, "epochs": 16, "objective": 0.9, "stopped": False},
              {"row": 1, "epochs": 16, "objective": 0.95, "stopped": False},
              {"row": 2, "epochs": 16, "objective": 1.0, "stopped": False},
              {"row": 3, "epochs": 4, "objective": 0.5, "stopped": True}]  # not full fidelity
    out = S.rerank(view, trials, top=2, seeds=2, draw_seed=(0,))
    assert out["candidates"] == 2 and out["tabulated"] == 2 and out["epochs"] == 2 * 2 * 16
    means = {r: np.mean([view.final_valid_by_seed[r][s] for s in (1112, 1113)]) for r in (0, 1)}
    assert out["row"] == min(means, key=means.get)
    # a row without extra seeds: base value + drawn residuals, the same draws for the same draw_seed
    v1, ok = view.rerank_values(5, 2, (3,))
    assert not ok and v1 == view.rerank_values(5, 2, (3,))[0]


# --- verdict arithmetic ----------------------------------------------------------------------


def test_verdict_on_known_input():
    random_full = np.full(40, 1.00)
    quarter = np.r_[np.full(20, 0.99), np.full(20, 1.01)]  # mean relative difference 0, spread ±1 %
    full = np.full(40, 0.97)  # 3 % better, no spread
    v = S.verdict(quarter, full, random_full, table_best=0.99)
    assert v["quarter_mean"] == pytest.approx(0.0, abs=1e-12)
    assert v["quarter_ci"][1] < 0.01 and v["non_inferior_at_quarter"]
    assert v["equal_budget_ci"] == pytest.approx([-0.03, -0.03])
    assert v["equal_budget_excludes_zero"]
    assert v["random_gap_to_table_best"] == pytest.approx(1 / 0.99 - 1)
    assert v["no_room"]  # 1.0 is 1.01 % above 0.99
    assert v["random_gap_ci"] == pytest.approx([1 / 0.99 - 1] * 2)  # no spread, no width
    worse = S.verdict(np.full(40, 1.02), full, random_full, table_best=0.9)
    assert not worse["non_inferior_at_quarter"] and not worse["no_room"]


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    x = np.random.default_rng(0).normal(0.0, 1.0, 200)
    a = S.bootstrap_mean_ci(x, seed=1)
    assert a == S.bootstrap_mean_ci(x, seed=1)
    assert a[0] < x.mean() < a[1]
    assert a[1] - a[0] == pytest.approx(2 * 1.96 * x.std() / math.sqrt(200), rel=0.15)


# --- the simulation on a hand-made table -----------------------------------------------------


class Scripted:
    """A searcher that proposes rows in a fixed order and remembers what it was told."""

    def __init__(self, rows):
        self.rows, self.told = list(rows), []

    def ask(self):
        row = self.rows.pop(0)
        return row, row

    def tell(self, handle, value):
        self.told.append((handle, value))


def flat_view(levels, epochs: int = 16) -> S.TableView:
    """Configurations whose objective is `levels[i]` from the first epoch on; test MAE = 10 + i."""
    n = len(levels)
    return S.TableView(unit=np.zeros((n, 1)), objective=np.repeat(np.asarray(levels, float)[:, None], epochs, axis=1),
                       final_test=10.0 + np.arange(n), final_valid_by_seed=[{1111: v} for v in levels],
                       base_seed=1111)


def test_asha_stops_the_right_trials_in_a_simulated_search():
    """grace 2, rf 3, 2 workers, budget 40, rows proposed 0, 1, 2, 3, 4 with objectives 1.0, 0.9,
    0.95, 0.8, 1.2. Rows 0 and 1 run first and alone set the rungs (both reach max_t = 16: 32
    epochs); row 2 (0.95) is below the 66.7th percentile of rung 2's rewards (−1.0, −0.9: −0.933)
    and stops at epoch 2; row 3 (0.8) continues; row 4 (1.2) stops at epoch 2; row 3 is still
    running at epoch 4 when the 40 epochs are spent."""
    view = flat_view([1.0, 0.9, 0.95, 0.8, 1.2])
    searcher = Scripted(range(5))
    trace = S.simulate(view, searcher, S.AshaRule(16, 2, 3), budget=40, workers=2)
    assert [(t["row"], t["epochs"], t["stopped"]) for t in trace.trials] == [
        (0, 16, False), (1, 16, False), (2, 2, True), (3, 4, False), (4, 2, True)]
    assert sum(t["epochs"] for t in trace.trials) == trace.spent == 40
    # told: the finished and the stopped trials, with their last objective; row 3 (cut) never
    assert searcher.told == [(0, 1.0), (1, 0.9), (2, 0.95), (4, 1.2)]
    # incumbent: row 0 after epoch 1, row 1 from epoch 2 (its first report), row 3 from epoch 34
    assert trace.curve[0] == 10.0 and trace.curve[1] == 11.0 and trace.curve[32] == 11.0
    assert trace.curve[33] == 13.0 and trace.curve[-1] == 13.0 and trace.incumbent_row == 3
    # without ASHA the same proposals run to max_t: 2 trials + 2 cut at 4 epochs
    fifo = S.simulate(view, Scripted(range(5)), S.FifoRule(16), budget=40, workers=2)
    assert [(t["row"], t["epochs"]) for t in fifo.trials] == [(0, 16), (1, 16), (2, 4), (3, 4)]


def test_snapshots_and_rerank_stay_inside_the_budget():
    """Re-ranking's epochs are paid from the same budget: search for b − cost epochs, then top × seeds
    full-length runs; a snapshot holds exactly the epochs spent when it was taken."""
    view = flat_view([1.0, 0.9, 0.95, 0.8, 1.2, 0.85, 0.99, 1.1])
    trace = S.simulate(view, Scripted(range(8)), S.FifoRule(16), budget=100, workers=2, snapshots=[48, 64])
    for b, trials in trace.snapshots.items():
        assert sum(t["epochs"] for t in trials) == b
    out = S.rerank(view, trace.snapshots[64], top=3, seeds=2)
    assert out["candidates"] == 3 and out["epochs"] == 3 * 2 * 16
    assert 64 + out["epochs"] == 160


def test_every_arm_spends_the_same_budget(tmp_path):
    """The benchmark's arms on a toy table: every curve has B points, re-ranking's budgets include
    its cost, and the same repetition gives the same result twice (common random numbers)."""
    import benchmarks.bench_search_simulated as bench

    table = toy_table(tmp_path, n_cfg=20)
    view = table.view()
    shared = {"budget": 160, "workers": 2, "reps": 2,
              "paper_values": {p.name: float(v) for p, v in zip(view.params, table.values[0])},
              "rerank_budgets": [128, 160]}
    bench._init(str(tmp_path / "toy.npz"), None, shared)
    for spec in bench.MAIN_ARMS:
        out = bench.run_arm(spec, 0)
        if spec["rerank"]:
            assert sorted(out["rerank"]) == [128, 160]
            for b, r in out["rerank"].items():
                assert r["epochs"] <= 96 and r["candidates"] <= 3
        else:
            assert out["curve"].shape == (160,)
            np.testing.assert_array_equal(out["curve"], bench.run_arm(spec, 0)["curve"])
    a = bench.run_arm(bench.MAIN_ARMS[0], 0)["curve"]  # random with seed 0 vs the A/A arm's seed
    b = bench.run_arm(bench.MAIN_ARMS[5], 0)["curve"]
    assert bench.MAIN_ARMS[5]["seed_offset"] and not np.array_equal(a, b)


# --- statistics ------------------------------------------------------------------------------


def test_bootstrap_ci_coverage_near_95_percent():
    """Over 300 samples of 40 draws from N(0.5, 1), the percentile CI covers the true mean 0.5 in
    about 95 % of them (percentile intervals run a little short at n = 40)."""
    rng = np.random.default_rng(0)
    cover = [lo < 0.5 < hi for lo, hi in (S.bootstrap_mean_ci(rng.normal(0.5, 1.0, 40), n_boot=1000, seed=k)
                                          for k in range(300))]
    assert 0.89 <= np.mean(cover) <= 0.99


def test_bootstrap_band_is_pointwise():
    curves = np.stack([np.full(5, 1.0), np.full(5, 3.0)] * 10)  # mean 2 everywhere
    lo, hi = S.bootstrap_band(curves, n_boot=500)
    assert lo.shape == hi.shape == (5,)
    assert np.all(lo < 2.0) and np.all(hi > 2.0) and np.all(lo >= 1.0) and np.all(hi <= 3.0)


def test_aa_calibration_on_known_truths():
    rng = np.random.default_rng(1)
    base = rng.normal(1.0, 0.01, (20, 50))
    same = np.stack([base, base], axis=2)  # identical arms: difference exactly 0
    out = S.aa_calibration(same, margin=0.01, n_boot=200)
    assert out["pass_rate"] == 1.0 and out["ci_excludes_zero_rate"] == 0.0
    assert out["pass_rate_when_truth_is_margin"] == 0.0  # exactly +1 % everywhere: the bound is +1 %, not below
    # independent arms with 1 % noise: (ii)'s CI excludes 0 about 5 % of the time
    noisy = np.stack([base, rng.normal(1.0, 0.01, (20, 50))], axis=2)
    out = S.aa_calibration(noisy, margin=0.01, n_boot=500)
    assert out["experiments"] == 20 and out["reps_per_experiment"] == 50
    assert out["pass_rate"] == 1.0  # a CI of width ~0.6 % around 0 is always below +1 %
    assert out["ci_excludes_zero_rate"] <= 0.25
    assert out["single_search_rel_diff_sd"] == pytest.approx(0.01 * math.sqrt(2), rel=0.2)


def test_choose_defaults_rule():
    import benchmarks.bench_search_simulated as bench

    def cand(q, b, **kw):
        return {"grace": kw.get("grace", 2), "startup": kw.get("startup", 10), "paper_start": True,
                "vs_shipped": {"96": {"mean": q[0], "ci": list(q[1:])}, "384": {"mean": b[0], "ci": list(b[1:])}}}

    shipped = cand((0, 0, 0), (0, 0, 0), grace=4)
    # a candidate whose CI excludes 0 on the good side at one budget and includes it at the other wins
    arms = {"tpe+asha": shipped, "g2": cand((-0.02, -0.03, -0.01), (-0.001, -0.004, 0.002), grace=2),
            "g8": cand((-0.01, -0.02, 0.001), (-0.01, -0.02, 0.001), grace=8)}
    assert bench.choose_defaults(arms, (96, 384))["grace"] == 2
    # ... but not if it is worse (CI above 0) at the other budget
    arms["g2"] = cand((-0.02, -0.03, -0.01), (0.01, 0.005, 0.02), grace=2)
    assert bench.choose_defaults(arms, (96, 384))["arm"] == "tpe+asha"
    # nothing significant: the shipped settings stand
    assert bench.choose_defaults({"tpe+asha": shipped, "g8": arms["g8"]}, (96, 384))["grace"] == 4
