"""HyCon: each loss term against a loop-based definition, the method's facts, and training runs."""

from __future__ import annotations

import math

import pytest
import torch

from mmsa_core.config import RunConfig
from mmsa_core.losses import class_labels, supcon_loss
from mmsa_core.methods import get_method
from mmsa_core.methods.hycon import TERMS, Params
from mmsa_core.methods.hycon import losses as hl
from mmsa_core.trainer import STATE_FILE, train
from tests.core.conftest import run_config, tiny_config

METHOD = get_method("hycon")
FAST = {"method": "hycon", "av_layers": 1}


@pytest.fixture(scope="module")
def tiny_data():
    from mmsa_core.data import load_dataset

    return load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(96, 48, 48))


# ------------------------------------------------------------------------------------------------
# loop-based definitions (pure Python over float64 entries)


def _cos(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(x @ y) / (float(x.norm()) * float(y.norm()))


def _rule(y: float, rule: str) -> int:
    if rule == "sign2":
        return int(y >= 0)
    if rule == "sign3":
        return 0 if y < 0 else (1 if y == 0 else 2)
    return round(min(max(y, -3.0), 3.0)) + 3  # Python rounds half to even, as torch.round


def _supcon(vectors, classes, tau, allowed, beta=None):
    """vectors: list of 1-d tensors; allowed(a, k): whether anchor a is contrasted with k."""
    m = len(vectors)
    total, anchors = 0.0, 0
    for a in range(m):
        cset = [k for k in range(m) if k != a and allowed(a, k)]
        pos = [k for k in cset if classes[k] == classes[a]]
        neg = [k for k in cset if classes[k] != classes[a]]
        if not pos:
            continue
        weight = {k: 1.0 for k in cset}
        if beta:
            z = sum(math.exp(beta * _cos(vectors[a], vectors[k])) for k in neg)
            for k in neg:
                weight[k] = len(neg) * math.exp(beta * _cos(vectors[a], vectors[k])) / z
        den = sum(weight[k] * math.exp(_cos(vectors[a], vectors[k]) / tau) for k in cset)
        total += -sum(_cos(vectors[a], vectors[p]) / tau - math.log(den) for p in pos) / len(pos)
        anchors += 1
    return total / anchors if anchors else 0.0


def intra_direct(zs, classes, tau, beta=None):
    return sum(_supcon(list(z), classes, tau, lambda a, k: True, beta) for z in zs)


def inter_direct(zs, classes, tau, pairing="pairs", beta=None):
    """Anchor (m, i) against (n, j) with n != m only; positives c_i = c_j (j = i included)."""
    groups = ([(m, n) for m in range(len(zs)) for n in range(m + 1, len(zs))] if pairing == "pairs"
              else [tuple(range(len(zs)))])
    total = 0.0
    for group in groups:
        items = [(m, i) for m in group for i in range(zs[0].shape[0])]
        vectors = [zs[m][i] for m, i in items]
        cls = [classes[i] for _, i in items]
        total += _supcon(vectors, cls, tau, lambda a, k, items=items: items[a][0] != items[k][0], beta)
    return total


def semi_direct(zs, mu):
    n = zs[0].shape[0]
    return sum(sum((mu - _cos(zs[m][i], zs[k][i])) ** 2 for i in range(n)) / n
               for m in range(len(zs)) for k in range(m + 1, len(zs)))


def refine_direct(zs, classes, t_intra, t_inter):
    items = [(m, i) for m in range(len(zs)) for i in range(zs[0].shape[0])]
    values = []
    for a, (m, i) in enumerate(items):
        for b, (n, j) in enumerate(items):
            if a != b and classes[i] == classes[j]:
                target = t_intra if m == n else t_inter
                values.append((target - _cos(zs[m][i], zs[n][j])) ** 2)
    return sum(values) / len(values) if values else 0.0


# scores with ties (two zeros, halves that round7 rounds to even), both signs, the clip edges
SCORES = [-3.4, -1.6, -0.5, 0.0, 0.0, 0.5, 1.5, 2.5, 3.0]


def _views(k: int, n: int, d: int = 5, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(k)]


def _classes(scores, rule):
    got = class_labels(torch.tensor(scores, dtype=torch.float64), rule)
    expected = [_rule(y, rule) for y in scores]
    assert got.tolist() == expected  # the class rule the terms see is the one the loops use
    return got, expected


# ------------------------------------------------------------------------------------------------
# the terms against their definitions


@pytest.mark.parametrize("rule", ["sign2", "sign3", "round7"])
@pytest.mark.parametrize("tau", [0.05, 0.5, 2.0])
def test_intra_and_inter_match_the_loops(rule, tau):
    classes, cls = _classes(SCORES, rule)
    zs = _views(3, len(SCORES))
    assert float(hl.intra_loss(zs, classes, tau)) == pytest.approx(intra_direct(zs, cls, tau), abs=1e-9)
    for pairing in ("pairs", "joint"):
        got = float(hl.inter_loss(zs, classes, tau, pairing=pairing))
        assert got == pytest.approx(inter_direct(zs, cls, tau, pairing), abs=1e-9), pairing


@pytest.mark.parametrize("rule", ["sign2", "sign3", "round7"])
def test_semi_and_refine_match_the_loops(rule):
    classes, cls = _classes(SCORES, rule)
    zs = _views(3, len(SCORES), seed=1)
    for mu in (1.0, 0.8, 0.5):
        assert float(hl.semi_loss(zs, mu)) == pytest.approx(semi_direct(zs, mu), abs=1e-9)
        got = float(hl.refine_loss(zs, classes, target_intra=1.0, target_inter=mu))
        assert got == pytest.approx(refine_direct(zs, cls, 1.0, mu), abs=1e-9)
    got = float(hl.refine_loss(zs, classes, target_intra=0.9, target_inter=0.7))
    assert got == pytest.approx(refine_direct(zs, cls, 0.9, 0.7), abs=1e-9)


def test_batch_of_one():
    zs = _views(3, 1, seed=2)
    classes = torch.tensor([1])
    # intra: no other sample of the modality, so no positive -> 0, still differentiable
    z = zs[0].clone().requires_grad_(True)
    loss = hl.intra_loss([z], classes, 0.1)
    loss.backward()
    assert float(loss.detach()) == 0.0 and z.grad is not None
    # inter: the sample's other modalities are its positives (j = i)
    for pairing in ("pairs", "joint"):
        assert float(hl.inter_loss(zs, classes, 0.1, pairing=pairing)) == pytest.approx(
            inter_direct(zs, [1], 0.1, pairing), abs=1e-9)
    assert float(hl.inter_loss(zs[:2], classes, 0.1)) == pytest.approx(0.0, abs=1e-12)  # 1 vs 1: log 1
    assert float(hl.semi_loss(zs, 0.8)) == pytest.approx(semi_direct(zs, 0.8), abs=1e-9)
    assert float(hl.refine_loss(zs, classes, target_intra=1.0, target_inter=0.8)) == pytest.approx(
        refine_direct(zs, [1], 1.0, 0.8), abs=1e-9)
    assert float(hl.refine_loss(zs[:1], classes)) == 0.0  # text only, one sample: no pair at all


def test_all_same_classes_and_ties():
    zs = _views(2, 6, seed=3)
    classes = torch.zeros(6, dtype=torch.long)
    cls = [0] * 6
    assert float(hl.intra_loss(zs, classes, 0.3)) == pytest.approx(intra_direct(zs, cls, 0.3), abs=1e-9)
    assert float(hl.inter_loss(zs, classes, 0.3)) == pytest.approx(inter_direct(zs, cls, 0.3), abs=1e-9)
    assert float(hl.refine_loss(zs, classes, target_inter=0.8)) == pytest.approx(
        refine_direct(zs, cls, 1.0, 0.8), abs=1e-9)
    # identical vectors: every logit ties -> each SupCon is log(#contrasted)
    tied = [torch.ones(4, 3, dtype=torch.float64)] * 2
    two = torch.tensor([0, 0, 1, 1])
    assert float(hl.intra_loss(tied, two, 0.5)) == pytest.approx(2 * math.log(3), abs=1e-9)
    assert float(hl.inter_loss(tied, two, 0.5)) == pytest.approx(math.log(4), abs=1e-9)
    assert float(hl.refine_loss(tied, two)) == pytest.approx(0.0, abs=1e-12)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_temperature_scales_the_logits():
    """With two vectors per anchor, SupCon is softplus((s_neg − s_pos)/τ): check τ directly."""
    zs = [torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)]
    classes = torch.tensor([0, 0, 1])
    for tau in (0.05, 0.2, 1.0):
        # anchor 0: pos 1 (cos 0.6), neg 2 (cos 0); anchor 1: pos 0 (0.6), neg 2 (0.8); 2: no positive
        expected = (_softplus((0.0 - 0.6) / tau) + _softplus((0.8 - 0.6) / tau)) / 2
        assert float(hl.intra_loss(zs, classes, tau)) == pytest.approx(expected, abs=1e-9)


def test_margin_one_is_plain_alignment_and_below_one_keeps_a_gap():
    z = _views(1, 5, seed=4)[0]
    aligned = [z, 2.5 * z]  # the same directions
    assert float(hl.semi_loss(aligned, 1.0)) == pytest.approx(0.0, abs=1e-12)
    assert float(hl.semi_loss(aligned, 0.8)) == pytest.approx(0.04, abs=1e-12)  # (0.8 − 1)²
    # μ < 1 is minimised at cosine μ, not at 1
    gap = [torch.tensor([[1.0, 0.0]], dtype=torch.float64),
           torch.tensor([[0.8, 0.6]], dtype=torch.float64)]
    assert float(hl.semi_loss(gap, 0.8)) == pytest.approx(0.0, abs=1e-12)
    assert float(hl.semi_loss(gap, 1.0)) == pytest.approx(0.04, abs=1e-12)
    # the refinement's inter-modal target follows μ through the config ("margin")
    cfg = run_config(method="hycon", margin=0.6)
    assert cfg.params.inter_target() == 0.6
    assert run_config(method="hycon", refine_target_inter="0.9").params.inter_target() == 0.9


def test_pairs_and_joint_agree_for_two_modalities():
    zs = _views(2, 7, seed=5)
    classes = class_labels(torch.tensor(SCORES[:7]), "sign3")
    assert float(hl.inter_loss(zs, classes, 0.2, pairing="pairs")) == pytest.approx(
        float(hl.inter_loss(zs, classes, 0.2, pairing="joint")), abs=1e-12)


def test_inter_never_contrasts_a_vector_with_its_own_modality():
    mask = hl.cross_modal_mask(3, 4)
    modality = [m for m in range(3) for _ in range(4)]
    for a in range(12):
        for k in range(12):
            assert bool(mask[a, k]) == (modality[a] != modality[k])
    # Behaviour: change only the text vectors' similarities among themselves (extra orthogonal
    # components of fixed norm, shared within groups or along one direction each), keeping
    # every cross-modal cosine: inter is unchanged, intra (which does look within text) changes.
    n, d, r = 5, 4, 0.6
    g = torch.Generator().manual_seed(6)
    base = [torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
            for _ in range(3)]
    pad = torch.zeros(n, n, dtype=torch.float64)
    others = [torch.cat([b, pad], dim=1) for b in base[1:]]
    shared = torch.zeros(n, n, dtype=torch.float64)  # groups {0, 1}, {2, 3}, {4} share a direction
    shared[[0, 1, 2, 3, 4], [0, 0, 1, 1, 2]] = r  # (one direction for all would shift every logit alike)
    own = r * torch.eye(n, dtype=torch.float64)
    text_shared = torch.cat([math.sqrt(1 - r * r) * base[0], shared], dim=1)
    text_own = torch.cat([math.sqrt(1 - r * r) * base[0], own], dim=1)
    classes = torch.tensor([0, 1, 0, 1, 1])
    for pairing in ("pairs", "joint"):
        a = hl.inter_loss([text_shared, *others], classes, 0.1, pairing=pairing)
        b = hl.inter_loss([text_own, *others], classes, 0.1, pairing=pairing)
        assert float(a) == pytest.approx(float(b), abs=1e-12)
        # without the mask the same vectors give different values: the check has teeth
        no_mask_a = supcon_loss(torch.cat([text_shared, *others]), classes.repeat(3), 0.1)
        no_mask_b = supcon_loss(torch.cat([text_own, *others]), classes.repeat(3), 0.1)
        assert abs(float(no_mask_a) - float(no_mask_b)) > 1e-3
    assert abs(float(hl.intra_loss([text_shared], classes, 0.1))
               - float(hl.intra_loss([text_own], classes, 0.1))) > 1e-3


@pytest.mark.parametrize("beta", [0.5, 3.0])
def test_hard_negative_weighting_matches_its_definition(beta):
    classes, cls = _classes(SCORES, "sign3")
    zs = _views(3, len(SCORES), seed=7)
    assert float(hl.intra_loss(zs, classes, 0.3, beta=beta)) == pytest.approx(
        intra_direct(zs, cls, 0.3, beta), abs=1e-9)
    for pairing in ("pairs", "joint"):
        assert float(hl.inter_loss(zs, classes, 0.3, pairing=pairing, beta=beta)) == pytest.approx(
            inter_direct(zs, cls, 0.3, pairing, beta), abs=1e-9)
    # β → 0 is SupCon; all-same classes (no negative) are unaffected by β
    z = torch.cat(zs)
    c = classes.repeat(3)
    assert float(hl.weighted_supcon_loss(z, c, 0.3, beta=1e-12)) == pytest.approx(
        float(supcon_loss(z, c, 0.3)), abs=1e-9)
    same = torch.zeros(len(SCORES), dtype=torch.long)
    assert float(hl.intra_loss(zs, same, 0.3, beta=beta)) == pytest.approx(
        float(hl.intra_loss(zs, same, 0.3)), abs=1e-9)
    # the weights are detached: the gradient is that of the loss with the weights held constant
    x = zs[0].clone().requires_grad_(True)
    hl.intra_loss([x], classes, 0.3, beta=beta).backward()
    y = zs[0].clone().requires_grad_(True)
    u = torch.nn.functional.normalize(y, dim=1)
    cos = u @ u.T
    total, anchors = 0.0, 0
    for a in range(len(cls)):
        pos = [k for k in range(len(cls)) if k != a and cls[k] == cls[a]]
        neg = [k for k in range(len(cls)) if cls[k] != cls[a]]
        if not pos:
            continue
        w = {k: 1.0 for k in pos}
        z = sum(math.exp(beta * float(cos[a, k].detach())) for k in neg)
        w.update({k: len(neg) * math.exp(beta * float(cos[a, k].detach())) / z for k in neg})  # constants
        den = torch.log(sum(w[k] * torch.exp(cos[a, k] / 0.3) for k in pos + neg))
        total = total - sum(cos[a, p] / 0.3 - den for p in pos) / len(pos)
        anchors += 1
    (total / anchors).backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-10)


def test_losses_refuse_bad_input():
    zs = _views(2, 3)
    with pytest.raises(ValueError, match="two modalities"):
        hl.inter_loss(zs[:1], torch.tensor([0, 1, 0]), 0.1)
    with pytest.raises(ValueError, match="two modalities"):
        hl.semi_loss(zs[:1], 0.8)
    with pytest.raises(ValueError, match="same N"):
        hl.intra_loss([zs[0], zs[1][:2]], torch.tensor([0, 1, 0]), 0.1)
    with pytest.raises(ValueError, match="pairing"):
        hl.inter_loss(zs, torch.tensor([0, 1, 0]), 0.1, pairing="all")


# ------------------------------------------------------------------------------------------------
# the method's facts


def test_terms_and_modalities():
    assert METHOD.terms == TERMS and TERMS[0] == "task"
    for mods in ("ta", "tv", "tav"):
        assert METHOD.possible_terms(run_config(method="hycon", modalities=mods)) == TERMS
    text = run_config(method="hycon", modalities="t")
    assert METHOD.possible_terms(text) == ("task", "intra", "refine")
    assert set(METHOD.term_needs) == set(TERMS[1:]) and "two modalities" in METHOD.term_needs["inter"]
    cfg = run_config(method="hycon", lambda_intra=0.2, lambda_inter=0.3, lambda_semi=0.4, rho=0.5)
    assert METHOD.loss_weights(cfg) == {"task": 1.0, "intra": 0.2, "inter": 0.3, "semi": 0.4, "refine": 0.5}
    off = run_config(method="hycon", disabled_losses=["semi"], rho=0.0)
    assert off.active_losses == ("task", "intra", "inter")
    assert "85.2" in METHOD.published and "0.776" in METHOD.published
    doc = __import__("mmsa_core.methods.hycon", fromlist=["x"]).__doc__
    assert "2109.01797" in doc and doc.count("reconstruction") >= 5


def test_search_space():
    space = METHOD.search_space()
    assert space.names() == ("hycon.lambda_intra", "hycon.lambda_inter", "hycon.lambda_semi", "hycon.tau",
                             "hycon.margin", "hycon.rho", "hycon.class_rule", "hycon.hard_negatives",
                             "hycon.hard_beta")
    p = {q.name: q for q in space.params()}
    for lam in ("hycon.lambda_intra", "hycon.lambda_inter", "hycon.lambda_semi"):
        assert (p[lam].low, p[lam].high, p[lam].log) == (1e-3, 1.0, True)
    assert (p["hycon.tau"].low, p["hycon.tau"].high, p["hycon.tau"].log) == (0.05, 1.0, True)
    assert (p["hycon.margin"].low, p["hycon.margin"].high) == (0.5, 1.0)
    assert (p["hycon.rho"].low, p["hycon.rho"].high, p["hycon.rho"].log) == (0.0, 1.0, False)
    assert p["hycon.class_rule"].choices == ("sign2", "sign3", "round7")
    assert p["hycon.hard_negatives"].choices == (False, True)
    assert p["hycon.hard_beta"].describe()["when"] == {"hycon.hard_negatives": [True]}
    assert not p["hycon.hard_beta"].active({"hycon.hard_negatives": False})
    assert p["hycon.hard_beta"].active({"hycon.hard_negatives": True})
    for dataset in ("mosi", "mosei"):
        start = space.start_point(RunConfig.paper("hycon", dataset).to_dict())
        assert "hycon.hard_beta" not in start  # the switch is off by default
        values = RunConfig.paper("hycon", dataset).to_dict()
        for q in space.params():
            if q.kind == "float" and q.active(values):
                assert q.low <= values[q.name] <= q.high, q.name
    assert RunConfig.paper("hycon", "mosei").data == "synthetic-mosei"


def test_bad_configuration_names_the_field():
    for field, value, pattern in [("tau", 0.0, r"hycon\.tau=0\.0 must be > 0"),
                                  ("lambda_inter", -1.0, r"hycon\.lambda_inter=-1\.0 must be >= 0"),
                                  ("margin", 1.5, r"hycon\.margin=1\.5 must be a cosine"),
                                  ("refine_target_inter", "abc", r"hycon\.refine_target_inter='abc'"),
                                  ("refine_target_inter", "2", r"hycon\.refine_target_inter='2'"),
                                  ("fusion_dim", 0, r"hycon\.fusion_dim=0 must be >= 1")]:
        with pytest.raises(ValueError, match=pattern):
            run_config(method="hycon", **{field: value})
    with pytest.raises(ValueError, match=r"hycon\.class_rule.*sign2"):
        run_config(method="hycon", class_rule="sign5")
    with pytest.raises(ValueError, match=r"hycon\.inter_pairing.*joint"):
        run_config(method="hycon", inter_pairing="all")
    with pytest.raises(ValueError, match=r"unknown term\(s\) \['contrast'\].*'intra'"):
        run_config(method="hycon", disabled_losses=["contrast"])
    with pytest.raises(ValueError, match="hscl"):  # another method's key
        RunConfig.from_dict({"method": "hycon", "hscl.tau": 0.3})
    assert Params().problems() == []


def test_the_shipped_ablation_spec():
    from ablations.spec import load_spec

    spec = load_spec("ablations/specs/hycon_terms.yaml")
    assert spec.method == "hycon" and spec.seeds == (1111, 1112, 1113) and spec.reference == "full"
    cfgs = spec.configs()
    assert cfgs["full"].active_losses == TERMS
    for term in TERMS[1:]:
        assert cfgs[f"no_{term}"].active_losses == tuple(t for t in TERMS if t != term)


# ------------------------------------------------------------------------------------------------
# the torch side


@pytest.mark.parametrize("modalities", ["t", "ta", "tv", "tav"])
def test_trains_one_epoch_in_every_modality_subset(tiny_data, modalities):
    res = train(tiny_config(**FAST, modalities=modalities, max_epochs=1), tiny_data, progress=False)
    expected = METHOD.possible_terms(res.config)
    assert set(res.history[0].train) == {"loss", *expected}
    assert all(math.isfinite(v) for v in res.history[0].train.values())
    assert math.isfinite(res.best_test["mae"])


@pytest.mark.parametrize("term", TERMS[1:])
def test_a_disabled_term_is_not_computed(tiny_data, monkeypatch, term):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"{term} was computed although disabled")

    monkeypatch.setattr(hl, f"{term}_loss", forbidden)
    res = train(tiny_config(**FAST, max_epochs=1, disabled_losses=[term]), tiny_data, progress=False)
    assert term not in res.history[0].train
    assert set(res.history[0].train) == {"loss", *(t for t in TERMS if t != term)}


def test_zero_weights_and_task_only_skip_the_projections(tiny_data, monkeypatch):
    from mmsa_core.methods.hycon.runtime import HyConModel

    calls = []
    real = HyConModel.forward

    def spy(self, batch, project=True):
        calls.append(project)
        return real(self, batch, project)

    monkeypatch.setattr(HyConModel, "forward", spy)
    cfg = tiny_config(**FAST, max_epochs=1, lambda_intra=0.0, lambda_inter=0.0, lambda_semi=0.0, rho=0.0)
    res = train(cfg, tiny_data, progress=False)
    assert set(res.history[0].train) == {"loss", "task"}
    assert calls and not any(calls)


def test_hard_negatives_and_other_options_train(tiny_data):
    cfg = tiny_config(**FAST, max_epochs=1, hard_negatives=True, hard_beta=2.0, class_rule="round7",
                      inter_pairing="joint", refine_target_inter="1.0")
    res = train(cfg, tiny_data, progress=False)
    assert all(math.isfinite(v) for v in res.history[0].train.values())
