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

# SweepConfig.config_hash(space) at b84beb3, of sweeps as 0.1.0 ran them: no re-rank stage (0.2.0's
# default re-ranks, which is another sweep; `rerank_top=0` is the same one and must hash the same)
CONFIG_HASHES = {
    "default": (lambda: SweepConfig(rerank_top=0), "a435c03d359a3f06"),
    "smoke": (lambda: smoke_config(rerank_top=0), "41707c0ce6cae9fa"),
    "l1_mosei": (lambda: SweepConfig(method="l1", data="synthetic-mosei", num_samples=8, max_epochs=6,
                                     rerank_seeds=0), "f3d669a23c3c0718"),
    "selfmm_lr": (lambda: SweepConfig(method="selfmm", search_lr_dropout=True, sampler="random",
                                      overrides={"batch_size": 64}, rerank_top=0), "009df381c62778dd"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_HASHES))
def test_sweep_configuration_hashes_are_unchanged(case):
    make, recorded = CONFIG_HASHES[case]
    cfg = make()
    assert cfg.config_hash(SPACES[cfg.method].describe(cfg.search_lr_dropout)) == recorded


def test_ablation_study_names_are_unchanged():
    from ablations.run import build_parser, spec_from_args
    from ablations.runner import ablation_study

    spec = spec_from_args(build_parser().parse_args(["quickstart", "--smoke"]))
    assert spec.fingerprint() == "6729969cf4ca8cfe"  # the parent's config_hash tag
    study = ablation_study(spec)
    assert [g.name for g in study.grids] == ["grid-899feb76543a"]
    assert study.parent_tags["config_hash"] == "6729969cf4ca8cfe"


def test_comparison_names_are_unchanged():
    from ablations import compare

    comp = compare.build_comparison(["all"], seeds=[1111, 1112])
    assert (comp.name, comp.fingerprint()) == ("compare-synthetic-mosi", "a4db2cf96d71003e")
    assert [g.name for g in compare.comparison_study(comp).grids] == ["grid-a4db2cf96d71003e"]


@pytest.mark.parametrize("protocol, grids", [
    ("evaluate", ["grid-895c56bb5956"]),
    ("retrain", ["grid-r0.00-6033d8b9b280", "grid-r0.50-61028a99dead", "grid-r1.00-4b2794f2261c"]),
])
def test_robustness_study_names_are_unchanged(protocol, grids):
    from ablations import robustness as rb

    request = rb.build_study(methods=["hscl", "l1"], rates=[0, 0.5, 1], seeds=[1, 2], protocol=protocol)
    assert request.name == f"robustness-{protocol}-hscl-l1"
    if protocol == "evaluate":
        assert request.fingerprint() == "97fa2636e987"
    assert [g.name for g in rb.robustness_study(request).grids] == grids


PAPER_PRESETS = {  # sha256 of RunConfig.paper(method, dataset).to_dict() at b84beb3
    "clfa/mosi": "868ec5c22d0853bb", "clfa/mosei": "7d12947a91be7c6c",
    "hscl/mosi": "506ace7a94041bed", "hscl/mosei": "7312ee7efd1b24c5",
    "hycon/mosi": "ef77a09368a274aa", "hycon/mosei": "647eaabb8abd69b7",
    "l1/mosi": "4e9ffcf81c7d60d6", "l1/mosei": "ce1fd34eaaed31dd",
    "mmckd/mosi": "6356ab6ca54c5165", "mmckd/mosei": "d61cd7600b6eb090",
    "selfmm/mosi": "907774e9f863ae5e", "selfmm/mosei": "b95e38ee39a246c0",
    "shared_private/mosi": "74db6e8ce1c546f4", "shared_private/mosei": "b9897ddda9a0df54",
}


@pytest.mark.parametrize("case", sorted(PAPER_PRESETS))
def test_every_methods_paper_presets_are_unchanged(case):
    """The per-dataset settings every method shares moved into the core configuration; what each
    method trains under `--preset mosi|mosei` did not change."""
    import hashlib
    import json

    from mmsa_core.config import RunConfig

    method, dataset = case.split("/")
    blob = json.dumps(RunConfig.paper(method, dataset).to_dict(), sort_keys=True)
    assert hashlib.sha256(blob.encode()).hexdigest()[:16] == PAPER_PRESETS[case]
