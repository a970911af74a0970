"""Shared/private learning: the covariance-alignment loss against a loop-based definition, the pair
set P (pairs outside it are not computed), its reuse of Self-MM, training runs and bit-exact resume."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from mmsa_core.config import RunConfig
from mmsa_core.data.batching import make_loader
from mmsa_core.methods import get_method, selfmm
from mmsa_core.methods.runtime import build_runtime
from mmsa_core.methods.selfmm.runtime import SelfMMModel, SelfMMRuntime
from mmsa_core.methods.shared_private import PAIR_SETS, TERMS, Params, parse_pairs
from mmsa_core.methods.shared_private import runtime as sp_runtime
from mmsa_core.methods.shared_private.losses import coral_loss, covariance
from mmsa_core.trainer import STATE_FILE, build_optimizer, prepare_batch, train
from tests.core.conftest import run_config, tiny_config

METHOD = get_method("shared_private")
FAST = dict(method="shared_private", av_layers=1)


@pytest.fixture(scope="module")
def tiny_data():
    from mmsa_core.data import load_dataset

    return load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(96, 48, 48))


def first_batch(data, size=16):
    return prepare_batch(next(iter(make_loader(data.splits["train"], batch_size=size, shuffle=False))),
                         "cpu", True)


# ------------------------------------------------------------------------------------------------
# loop-based definitions (pure Python over float entries)


def loop_covariance(rows: list[list[float]]) -> list[list[float]]:
    n, d = len(rows), len(rows[0])
    mean = [sum(r[j] for r in rows) / n for j in range(d)]
    denom = max(n - 1, 1)
    return [[sum((r[j] - mean[j]) * (r[k] - mean[k]) for r in rows) / denom for k in range(d)]
            for j in range(d)]


def loop_coral(x: list[list[float]], z: list[list[float]]) -> float:
    cx, cz = loop_covariance(x), loop_covariance(z)
    d = len(x[0])
    return sum((cx[j][k] - cz[j][k]) ** 2 for j in range(d) for k in range(d)) / (4 * d * d)


# ------------------------------------------------------------------------------------------------
# the loss


@pytest.mark.parametrize("n, d", [(5, 3), (2, 4), (16, 8)])
def test_coral_matches_the_loop_definition(n, d):
    g = torch.Generator().manual_seed(n * 10 + d)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    z = 2.0 * torch.randn(n, d, generator=g, dtype=torch.float64) + 1.0
    assert torch.allclose(covariance(x), torch.tensor(loop_covariance(x.tolist()), dtype=torch.float64),
                          rtol=0, atol=1e-12)
    assert float(coral_loss(x, z)) == pytest.approx(loop_coral(x.tolist(), z.tolist()), rel=1e-12)


def test_coral_ties_constant_rows_scaling_and_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    assert float(coral_loss(x, x.clone())) == 0.0, "identical batches: no misalignment"
    assert float(coral_loss(x, x + 5.0)) == pytest.approx(0.0, abs=1e-12), "a shift leaves the covariance"
    same = torch.ones(6, 3, dtype=torch.float64) * 0.7  # all rows the same: covariance 0
    assert float(covariance(same).abs().max()) < 1e-30  # (rounding of the mean of 0.7s)
    assert float(coral_loss(x, same)) == pytest.approx(loop_coral(x.tolist(), same.tolist()), rel=1e-12)
    z = torch.randn(6, 3, generator=g, dtype=torch.float64)
    assert float(coral_loss(3 * x, 3 * z)) == pytest.approx(81 * float(coral_loss(x, z)), rel=1e-10)


def test_a_batch_of_one_has_zero_covariance_and_zero_gradient():
    x = torch.tensor([[1.0, -2.0, 3.0]], requires_grad=True)
    z = torch.tensor([[4.0, 0.5, -1.0]], requires_grad=True)
    assert covariance(x.detach()).tolist() == [[0.0] * 3] * 3
    loss = coral_loss(x, z)
    assert float(loss.detach()) == 0.0 == loop_coral(x.tolist(), z.tolist())
    loss.backward()
    assert not x.grad.any() and not z.grad.any()


def test_coral_rejects_mismatched_shapes_and_promotes_half():
    with pytest.raises(ValueError, match="differ"):
        coral_loss(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        covariance(torch.zeros(4))
    assert covariance(torch.ones(3, 2, dtype=torch.bfloat16)).dtype == torch.float32


# ------------------------------------------------------------------------------------------------
# the pair set P


def test_pairs_are_parsed_and_validated():
    assert parse_pairs("av, ta") == ("ta", "av")
    assert len(PAIR_SETS) == 7 and all(parse_pairs(p) for p in PAIR_SETS)
    for bad, why in (("ta,xx", r"unknown pair\(s\) \['xx'\]"), ("", "no pair"), ("ta,ta", "twice"),
                     ("at", r"unknown pair\(s\) \['at'\]")):
        with pytest.raises(ValueError, match=r"shared_private\.pairs=.*" + why):
            run_config(method="shared_private", pairs=bad)


@pytest.mark.parametrize("modalities, pairs, expected", [
    ("tav", "ta,tv,av", ("cov_ta", "cov_tv", "cov_av")),
    ("tav", "tv", ("cov_tv",)),
    ("ta", "ta,tv,av", ("cov_ta",)),
    ("tv", "ta,av", ()),
])
def test_possible_terms_follow_pairs_and_modalities(modalities, pairs, expected):
    cfg = run_config(method="shared_private", modalities=modalities, pairs=pairs)
    uni = tuple(f"uni_{m}" for m in modalities)
    assert METHOD.possible_terms(cfg) == ("task", *uni, *expected)


def test_pairs_not_in_P_are_not_computed(tiny_data, monkeypatch):
    calls = []
    real = sp_runtime.coral_loss
    monkeypatch.setattr(sp_runtime, "coral_loss", lambda x, z: calls.append(x.shape) or real(x, z))
    runtime = build_runtime(tiny_config(**FAST, pairs="tv"), tiny_data)
    seen = {}
    for m, proj in runtime.model.shared.items():
        proj.register_forward_hook(lambda mod, inp, out, m=m: seen.__setitem__(m, out.detach()))
    terms = runtime.training_terms(first_batch(tiny_data), epoch=1)
    assert set(terms) == {"task", "uni_t", "uni_a", "uni_v", "cov_tv"} and len(calls) == 1
    want = loop_coral(seen["t"].tolist(), seen["v"].tolist())
    assert float(terms["cov_tv"].detach()) == pytest.approx(want, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("term", ["cov_ta", "cov_tv", "cov_av", "uni_t", "uni_a", "uni_v"])
def test_each_term_can_be_disabled_by_name(tiny_data, term):
    cfg = dataclasses.replace(tiny_config(**FAST), disabled_losses=(term,))
    terms = build_runtime(cfg, tiny_data).training_terms(first_batch(tiny_data), epoch=1)
    assert term not in terms and set(terms) == set(TERMS) - {term}


def test_shared_projections_feed_the_fused_head_or_are_skipped(tiny_data):
    on = build_runtime(tiny_config(**FAST, cov_dim=16), tiny_data)
    rep = sum(on.model.rep_widths.values())
    assert on.model.heads["f"].layer_1.in_features == rep + 3 * 16
    off_cfg = dataclasses.replace(tiny_config(**FAST, shared_into_fusion=False),
                                  disabled_losses=("cov_ta", "cov_tv", "cov_av"))
    off = build_runtime(off_cfg, tiny_data)
    assert off.model.heads["f"].layer_1.in_features == rep
    calls = []
    for proj in off.model.shared.values():
        proj.register_forward_hook(lambda *a: calls.append(1))
    assert set(off.training_terms(first_batch(tiny_data), epoch=1)) == {"task", "uni_t", "uni_a", "uni_v"}
    assert calls == [], "nothing reads the shared projections: they are not computed"


def test_reuses_self_mm():
    assert issubclass(sp_runtime.SharedPrivateModel, SelfMMModel)
    assert issubclass(sp_runtime.SharedPrivateRuntime, SelfMMRuntime)
    assert issubclass(Params, selfmm.Params) and TERMS[:4] == selfmm.TERMS
    assert METHOD.presets == selfmm.PRESETS and METHOD.modality_subsets == selfmm.MODALITY_SUBSETS
    cfg = RunConfig.paper("shared_private", "mosi")
    assert (cfg.params.lambda_cov, cfg.params.pairs, cfg.params.cov_dim) == (0.1, "ta,tv,av", 32)
    assert cfg.batch_size == 32 and cfg.params.update_epochs == 4
    assert METHOD.loss_weights(cfg) == {"task": 1.0, "uni_t": 1.0, "uni_a": 1.0, "uni_v": 1.0,
                                        "cov_ta": 0.1, "cov_tv": 0.1, "cov_av": 0.1}
    assert METHOD.published.startswith("none published")


def test_search_space():
    space = {p.name: p for p in METHOD.space}
    lam = space["shared_private.lambda_cov"]
    assert lam.log and (lam.low, lam.high) == (1e-3, 10.0)
    assert space["shared_private.pairs"].choices == PAIR_SETS
    assert space["shared_private.pairs"].active({"modalities": "tav"})
    assert not space["shared_private.pairs"].active({"modalities": "ta"})
    assert space["shared_private.cov_dim"].choices == (16, 32, 64)
    assert {"shared_private.uni_weight", "shared_private.update_epochs"} <= set(space)


@pytest.mark.parametrize("values, field", [
    (dict(lambda_cov=-0.1), "shared_private.lambda_cov"),
    (dict(cov_dim=0), "shared_private.cov_dim"),
    (dict(update_epochs=0), "shared_private.update_epochs"),
    (dict(modalities="t"), "modalities"),
])
def test_bad_configuration_names_the_field(values, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        run_config(method="shared_private", **values)


# ------------------------------------------------------------------------------------------------
# training


@pytest.mark.parametrize("modalities", ["ta", "tv", "tav"])
def test_trains_one_epoch_in_every_supported_modality_subset(tiny_data, modalities):
    res = train(tiny_config(**FAST, modalities=modalities, max_epochs=1), tiny_data, progress=False)
    assert set(res.history[0].train) == {"loss", *METHOD.possible_terms(res.config)}
    assert all(math.isfinite(v) for v in res.best_test.values())
