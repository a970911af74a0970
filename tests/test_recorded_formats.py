"""Names and hashes that on-disk state depends on, recorded at b84beb3 before the study-driver redesign.

A sweep is resumed only when its configuration hash matches ``sweep.json``; a study's grid is
restored only under the same Tune experiment name (``grid-<hash of its runs>``) and the same
``<name>.grid.json`` hash. If one of these values changes, every sweep or study interrupted
before the change is refused (or silently started afresh) on resume — so they are pinned here.
"""

from __future__ import annotations

import pytest

from sweeps.config import SweepConfig, smoke_config
from sweeps.spaces import SPACES

CONFIG_HASHES = {  # SweepConfig.config_hash(space) at b84beb3
    "default": (lambda: SweepConfig(), "a435c03d359a3f06"),
    "smoke": (lambda: smoke_config(), "41707c0ce6cae9fa"),
    "l1_mosei": (lambda: SweepConfig(method="l1", data="synthetic-mosei", num_samples=8, max_epochs=6),
                 "f3d669a23c3c0718"),
    "selfmm_lr": (lambda: SweepConfig(method="selfmm", search_lr_dropout=True, sampler="random",
                                      overrides={"batch_size": 64}), "009df381c62778dd"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_HASHES))
def test_sweep_configuration_hashes_are_unchanged(case):
    make, recorded = CONFIG_HASHES[case]
    cfg = make()
    assert cfg.config_hash(SPACES[cfg.method].describe(cfg.search_lr_dropout)) == recorded


def test_ablation_study_names_are_unchanged():
    from ablations import runner
    from ablations.run import build_parser, spec_from_args

    spec = spec_from_args(build_parser().parse_args(["quickstart", "--smoke"]))
    assert spec.fingerprint() == "6729969cf4ca8cfe"  # the parent's config_hash tag
    runs = [(runner.run_key(t.variant, t.seed), t.config.to_dict()) for t in spec.trials()]
    assert "grid-" + runner._digest(runs) == "grid-899feb76543a"


def test_comparison_names_are_unchanged():
    from ablations import compare

    comp = compare.build_comparison(["all"], seeds=[1111, 1112])
    assert (comp.name, comp.fingerprint()) == ("compare-synthetic-mosi", "a4db2cf96d71003e")


@pytest.mark.parametrize("protocol, grids", [
    ("evaluate", ["grid-895c56bb5956"]),
    ("retrain", ["grid-r0.00-6033d8b9b280", "grid-r0.50-61028a99dead", "grid-r1.00-4b2794f2261c"]),
])
def test_robustness_study_names_are_unchanged(protocol, grids):
    from ablations import robustness as rb

    study = rb.build_study(methods=["hscl", "l1"], rates=[0, 0.5, 1], seeds=[1, 2], protocol=protocol)
    assert study.name == f"robustness-{protocol}-hscl-l1"
    if protocol == "evaluate":
        assert study.fingerprint() == "97fa2636e987"
        runs = [(rb.run_key(m, s), study.config(m, s).to_dict(), study.mask_seeds)
                for s in study.seeds for m in study.methods]
        assert ["grid-" + rb._digest(runs)] == grids
    else:
        names = []
        for r in study.rates:
            runs = [(rb.run_key(m, s, r), study.config(m, s).to_dict(), study.mask_seeds)
                    for s in study.seeds for m in study.methods]
            names.append(f"grid-r{r:.2f}-" + rb._digest(runs))
        assert names == grids
