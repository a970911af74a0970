"""Tests for mmsa_core/losses.py: each loss against a naive loop definition, plus edge cases.

SupCR is checked three ways: the O(M²) ``supcr_loss``, the literal (V·N)³ ``supcr_loss_direct`` and a
pure-Python triple loop written here from the spec (hscl.md §5, §7 quirk 1). Run:
``pytest tests/core/test_losses.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

from mmsa_core import losses

torch.set_num_threads(1)  # shared CI / dev machine

VARIANTS = ("intended", "hscl_code")
TIE_LEVELS = (-1.0, 0.0, 0.5, 1.0)


# ----------------------------------------------------------------------------------------------
# independent references


def _py_anchors(features: torch.Tensor, labels: torch.Tensor) -> tuple[list[list[float]], list[float]]:
    """Normalised view-major vectors and their labels as plain Python lists."""
    n, v, _ = features.shape
    vecs, ys = [], []
    for view in range(v):
        for i in range(n):
            x = [float(c) for c in features[i, view]]
            norm = math.sqrt(sum(c * c for c in x))
            vecs.append([c / norm for c in x])
            ys.append(float(labels[i]))
    return vecs, ys


def _py_supcr(features: torch.Tensor, labels: torch.Tensor, tau: float, variant: str) -> float:
    """SupCR exactly as written in the spec, one (a, p, k) at a time."""
    z, y = _py_anchors(features, labels)
    m = len(z)
    s = [[sum(p * q for p, q in zip(z[i], z[j])) / tau for j in range(m)] for i in range(m)]
    total = 0.0
    for a in range(m):
        per_anchor = 0.0
        for p in range(m):
            if p == a:
                continue
            d_ap = abs(y[a] - y[p])
            row = a if variant == "intended" else p
            den = sum(math.exp(s[row][k]) for k in range(m) if k != a and abs(y[a] - y[k]) >= d_ap)
            per_anchor += s[a][p] - math.log(den)
        total += per_anchor / (m - 1)
    return -total / m


def _py_infonce(features: torch.Tensor, tau: float) -> float:
    n = features.shape[0]
    z, _ = _py_anchors(features, torch.zeros(n))
    m = len(z)
    s = [[sum(p * q for p, q in zip(z[i], z[j])) / tau for j in range(m)] for i in range(m)]
    total, count = 0.0, 0
    for a in range(m):
        log_den = math.log(sum(math.exp(s[a][k]) for k in range(m) if k != a))
        for p in range(m):
            if p != a and p % n == a % n:
                total += s[a][p] - log_den
                count += 1
    return -total / count


def _labels(kind: str, n: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "random":
        return torch.randn(n, generator=gen, dtype=torch.float64) * 1.5
    if kind == "ties":
        return torch.tensor(TIE_LEVELS, dtype=torch.float64)[torch.randint(0, 4, (n,), generator=gen)]
    return torch.full((n,), 0.5, dtype=torch.float64)  # all equal


# ----------------------------------------------------------------------------------------------
# SupCR


@pytest.mark.parametrize("n", range(1, 9))
@pytest.mark.parametrize("v", (1, 2, 3))
def test_supcr_matches_direct_and_python_loop(n: int, v: int) -> None:
    if n * v < 2:
        pytest.skip("SupCR needs N·V ≥ 2")
    gen = torch.Generator().manual_seed(100 * n + v)
    for kind, tau in (("random", 0.5), ("ties", 0.07), ("equal", 1.0)):
        feats = torch.randn(n, v, 5, generator=gen, dtype=torch.float64)
        y = _labels(kind, n, gen)
        for variant in VARIANTS:
            fast = losses.supcr_loss(feats, y, tau, variant=variant).item()
            direct = losses.supcr_loss_direct(feats, y, tau, variant=variant).item()
            loop = _py_supcr(feats, y, tau, variant)
            assert fast == pytest.approx(direct, abs=1e-5, rel=0), (kind, tau, variant)
            assert fast == pytest.approx(loop, abs=1e-5, rel=0), (kind, tau, variant)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ("random", "ties", "equal"))
def test_supcr_gradients_match_direct(variant: str, kind: str) -> None:
    gen = torch.Generator().manual_seed(7)
    for n, v, tau in ((6, 2, 0.5), (5, 3, 0.1), (1, 2, 0.3), (7, 1, 2.0)):
        feats = torch.randn(n, v, 4, generator=gen, dtype=torch.float64)
        y = _labels(kind, n, gen)
        f1 = feats.clone().requires_grad_(True)
        f2 = feats.clone().requires_grad_(True)
        (g_fast,) = torch.autograd.grad(losses.supcr_loss(f1, y, tau, variant=variant), f1)
        (g_direct,) = torch.autograd.grad(losses.supcr_loss_direct(f2, y, tau, variant=variant), f2)
        torch.testing.assert_close(g_fast, g_direct, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_supcr_gradcheck(variant: str) -> None:
    gen = torch.Generator().manual_seed(3)
    feats = torch.randn(4, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 0.5, 0.5, -1.0], dtype=torch.float64)  # includes a tie
    assert torch.autograd.gradcheck(lambda f: losses.supcr_loss(f, y, 0.4, variant=variant), (feats,))


def test_supcr_hand_case() -> None:
    """N=3, V=1, z = (e1, e2, e1), y = (0, 1, 2), τ = 1, so s = [[1,0,1],[0,1,0],[1,0,1]].

    intended:  a=0: ℓ(0,1) = 0 − log(e⁰ + e¹) (K={1,2}), ℓ(0,2) = 1 − 1 = 0 (K={2});
               a=1: K={0,2} for both p (tie), ℓ = 0 − log 2 twice;
               a=2: ℓ(2,0) = 0, ℓ(2,1) = −log(1+e)          ->  L = (log(1+e) + log 2) / 3
    hscl_code: the denominator reads row p: ℓ(0,1) = 0 − log(e¹ + e⁰), ℓ(0,2) = 1 − s(2,2) = 0;
               a=1: ℓ = 0 − log(e¹ + e¹) twice; a=2: ℓ(2,0) = 1 − s(0,0) = 0, ℓ(2,1) = −log(1+e)
                                                              ->  L = (log(1+e) + 1 + log 2) / 3
    """
    feats = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]]], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    e = math.e
    expected = {"intended": (math.log(1 + e) + math.log(2)) / 3,
                "hscl_code": (math.log(1 + e) + 1 + math.log(2)) / 3}
    for variant, value in expected.items():
        assert losses.supcr_loss(feats, y, 1.0, variant=variant).item() == pytest.approx(value, abs=1e-12)
        assert losses.supcr_loss_direct(feats, y, 1.0, variant=variant).item() == pytest.approx(value, abs=1e-12)


def test_supcr_two_orthogonal_vectors() -> None:
    """M = 2: K(a, p) = {p}, so the intended loss is 0 and the code's is 1/τ − s(a, p) = 1/τ."""
    feats = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=torch.float64)
    y = torch.tensor([0.3, -2.0], dtype=torch.float64)
    assert losses.supcr_loss(feats, y, 0.25).item() == pytest.approx(0.0, abs=1e-12)
    assert losses.supcr_loss(feats, y, 0.25, variant="hscl_code").item() == pytest.approx(4.0, abs=1e-12)


def test_supcr_variants_differ_materially() -> None:
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(16, 2, 32, generator=gen)
    y = torch.randn(16, generator=gen)
    intended = losses.supcr_loss(feats, y, 0.5).item()
    code = losses.supcr_loss(feats, y, 0.5, variant="hscl_code").item()
    assert abs(intended - code) > 0.2, (intended, code)


def test_supcr_all_equal_labels_is_infonce_over_all_others() -> None:
    """Equal labels: every k ≠ a is a negative, i.e. −mean log_softmax over the M − 1 others."""
    gen = torch.Generator().manual_seed(5)
    feats = torch.randn(5, 2, 6, generator=gen, dtype=torch.float64)
    z = torch.nn.functional.normalize(torch.cat(torch.unbind(feats, 1)), dim=-1)
    eye = torch.eye(10, dtype=torch.bool)
    logp = torch.log_softmax((z @ z.T / 0.2).masked_fill(eye, float("-inf")), dim=1)
    expected = -logp[~eye].mean()
    got = losses.supcr_loss(feats, torch.zeros(5, dtype=torch.float64), 0.2)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_supcr_small_tau_stays_finite(variant: str, dtype: torch.dtype) -> None:
    """τ = 0.01 puts logits in [−100, 100]: exp would overflow float32 without log-space sums."""
    gen = torch.Generator().manual_seed(11)
    feats = torch.randn(32, 2, 16, generator=gen).to(dtype).requires_grad_(True)
    y = torch.tensor(TIE_LEVELS)[torch.randint(0, 4, (32,), generator=gen)]
    loss = losses.supcr_loss(feats, y, 0.01, variant=variant)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(feats.grad).all()
    assert loss.dtype == dtype
    if dtype == torch.float64:
        ref = losses.supcr_loss_direct(feats.detach(), y, 0.01, variant=variant)
        assert loss.item() == pytest.approx(ref.item(), abs=1e-8)


def test_supcr_float32_agrees_with_float64() -> None:
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(64, 2, 16, generator=gen, dtype=torch.float64)
    y = torch.randn(64, generator=gen, dtype=torch.float64).to(torch.float32).to(torch.float64)
    for variant in VARIANTS:
        lo = losses.supcr_loss(feats.float(), y.float(), 0.1, variant=variant).item()
        hi = losses.supcr_loss(feats, y, 0.1, variant=variant).item()
        assert lo == pytest.approx(hi, abs=1e-4)


def test_supcr_label_shapes_and_half_precision() -> None:
    gen = torch.Generator().manual_seed(4)
    feats = torch.randn(6, 2, 8, generator=gen)
    y = torch.randn(6, generator=gen)
    ref = losses.supcr_loss(feats, y, 0.5)
    torch.testing.assert_close(losses.supcr_loss(feats, y[:, None], 0.5), ref)
    half = losses.supcr_loss(feats.bfloat16(), y, 0.5)
    assert half.dtype == torch.float32 and abs(half.item() - ref.item()) < 0.05


def test_supcr_memory_is_quadratic() -> None:
    """No tensor autograd saves is bigger than M·(M+1) elements (the direct form saves M³ ones)."""
    n, v = 48, 2
    m = n * v
    gen = torch.Generator().manual_seed(9)
    y = torch.randn(n, generator=gen)

    def largest_saved(fn, variant: str) -> int:
        sizes: list[int] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            sizes.append(t.numel())
            return t

        feats = torch.randn(n, v, 8, generator=gen, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = fn(feats, y, 0.5, variant=variant)
        loss.backward()
        return max(sizes)

    for variant in VARIANTS:
        assert largest_saved(losses.supcr_loss, variant) <= m * (m + 1)
        assert largest_saved(losses.supcr_loss_direct, variant) >= m**3  # sanity of the probe


def test_supcr_errors() -> None:
    feats = torch.randn(4, 2, 3)
    y = torch.zeros(4)
    with pytest.raises(ValueError, match="N·V"):
        losses.supcr_loss(torch.randn(1, 1, 3), torch.zeros(1), 0.5)
    with pytest.raises(ValueError, match="labels"):
        losses.supcr_loss(feats, torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="tau"):
        losses.supcr_loss(feats, y, 0.0)
    with pytest.raises(ValueError, match="variant"):
        losses.supcr_loss(feats, y, 0.5, variant="paper")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(N, V, D\)"):
        losses.supcr_loss(torch.randn(4, 3), y, 0.5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("variant", VARIANTS)
def test_supcr_cuda_matches_cpu(variant: str) -> None:
    gen = torch.Generator().manual_seed(12)
    feats = torch.randn(40, 2, 16, generator=gen, dtype=torch.float64)
    y = torch.tensor(TIE_LEVELS, dtype=torch.float64)[torch.randint(0, 4, (40,), generator=gen)]
    cpu = losses.supcr_loss(feats, y, 0.1, variant=variant)
    f_gpu = feats.cuda().requires_grad_(True)
    gpu = losses.supcr_loss(f_gpu, y.cuda(), 0.1, variant=variant)
    gpu.backward()
    assert gpu.item() == pytest.approx(cpu.item(), abs=1e-10)
    assert torch.isfinite(f_gpu.grad).all()


# ----------------------------------------------------------------------------------------------
# InfoNCE, Sim, L1


@pytest.mark.parametrize("n,v", [(1, 2), (3, 2), (5, 3), (8, 2)])
@pytest.mark.parametrize("tau", (0.07, 0.5))
def test_infonce_matches_loop(n: int, v: int, tau: float) -> None:
    gen = torch.Generator().manual_seed(n * 10 + v)
    feats = torch.randn(n, v, 6, generator=gen, dtype=torch.float64)
    assert losses.infonce_loss(feats, tau).item() == pytest.approx(_py_infonce(feats, tau), abs=1e-9)


def test_infonce_hand_case_and_grad() -> None:
    # N = 1, V = 2: the only other vector is the positive -> log-softmax over one entry = 0.
    feats = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)
    loss = losses.infonce_loss(feats, 0.5)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    loss.backward()
    assert torch.isfinite(feats.grad).all()
    # N = 2, V = 2 orthonormal-ish: views of sample 0 = e1, sample 1 = e2; τ = 1.
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    feats = torch.tensor([[e1, e1], [e2, e2]], dtype=torch.float64)
    # anchor e1: positive logit 1, others {1 (pos), 0, 0} -> ℓ = 1 − log(e + 2)
    assert losses.infonce_loss(feats, 1.0).item() == pytest.approx(math.log(math.e + 2) - 1, abs=1e-12)


def test_infonce_needs_two_views() -> None:
    with pytest.raises(ValueError, match="V ≥ 2"):
        losses.infonce_loss(torch.randn(4, 1, 3), 0.5)


def test_similarity_loss_both_norms() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    z = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    assert losses.similarity_loss(x, z).item() == pytest.approx(2.5)  # (5 + 0) / 2
    assert losses.similarity_loss(x, z, squared=True).item() == pytest.approx(12.5)  # (25 + 0) / 2
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(7, 5, generator=gen), torch.randn(7, 5, generator=gen)
    loop = sum(math.sqrt(sum((float(p) - float(q)) ** 2 for p, q in zip(a[i], b[i]))) for i in range(7)) / 7
    assert losses.similarity_loss(a, b).item() == pytest.approx(loop, rel=1e-6)


def test_similarity_loss_grad_at_zero_distance_is_finite() -> None:
    x = torch.ones(3, 4, requires_grad=True)
    losses.similarity_loss(x, torch.ones(3, 4)).backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        losses.similarity_loss(torch.ones(3, 4), torch.ones(3, 5))


def test_l1_loss_shapes() -> None:
    pred = torch.tensor([[0.5], [-1.0], [2.0]])
    target = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)
    assert losses.l1_loss(pred, target).item() == pytest.approx((0.5 + 0.0 + 2.0) / 3)
    assert losses.l1_loss(pred.reshape(-1), target[:, None]).item() == pytest.approx(2.5 / 3)
    assert losses.l1_loss(pred, target).dtype == torch.float32
    with pytest.raises(ValueError):
        losses.l1_loss(pred, torch.zeros(4))


def test_losses_under_autocast_keep_full_precision_logits() -> None:
    gen = torch.Generator().manual_seed(6)
    feats = torch.randn(12, 2, 16, generator=gen)
    y = torch.tensor(TIE_LEVELS)[torch.randint(0, 4, (12,), generator=gen)]
    ref_supcr, ref_nce = losses.supcr_loss(feats, y, 0.05), losses.infonce_loss(feats, 0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        supcr, nce = losses.supcr_loss(feats, y, 0.05), losses.infonce_loss(feats, 0.05)
    assert supcr.dtype == torch.float32
    assert supcr.item() == pytest.approx(ref_supcr.item(), abs=1e-5)
    assert nce.item() == pytest.approx(ref_nce.item(), abs=1e-5)


# ------------------------------------------------------------------------------------------------
# SupCon and class rules (shared by HyCon and MM-CKD)


def _supcon_direct(z, classes, tau, contrast=None):
    """Loop over anchors and positives, straight from the definition."""
    import math as _m

    z = torch.nn.functional.normalize(z.double(), dim=1)
    m = z.shape[0]
    total, anchors = 0.0, 0
    for a in range(m):
        cset = [k for k in range(m) if k != a and (contrast is None or bool(contrast[a, k]))]
        pos = [p for p in cset if int(classes[p]) == int(classes[a])]
        if not pos:
            continue
        denom = _m.log(sum(_m.exp(float(z[a] @ z[k]) / tau) for k in cset))
        total += -sum(float(z[a] @ z[p]) / tau - denom for p in pos) / len(pos)
        anchors += 1
    return total / anchors if anchors else 0.0


@pytest.mark.parametrize("tau", [0.07, 0.5, 2.0])
def test_supcon_matches_the_direct_definition(tau):
    from mmsa_core.losses import supcon_loss

    g = torch.Generator().manual_seed(0)
    z = torch.randn(9, 4, generator=g, dtype=torch.float64)
    classes = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2, 3])  # class 3 has no positive: not an anchor
    assert float(supcon_loss(z, classes, tau)) == pytest.approx(_supcon_direct(z, classes, tau), abs=1e-9)
    contrast = torch.rand(9, 9, generator=g) > 0.3
    assert float(supcon_loss(z, classes, tau, contrast=contrast)) == pytest.approx(
        _supcon_direct(z, classes, tau, contrast), abs=1e-9)


def test_supcon_edge_cases():
    from mmsa_core.losses import supcon_loss

    z = torch.randn(1, 3, requires_grad=True)
    loss = supcon_loss(z, torch.tensor([0]), 0.1)  # batch of 1: no positive, loss 0, still differentiable
    loss.backward()
    assert float(loss) == 0.0 and z.grad is not None
    same = torch.randn(5, 3, dtype=torch.float64)
    cls = torch.zeros(5, dtype=torch.long)  # all-same classes: every other vector is a positive
    assert float(supcon_loss(same, cls, 0.3)) == pytest.approx(_supcon_direct(same, cls, 0.3), abs=1e-9)
    tied = torch.ones(4, 2, dtype=torch.float64)  # identical vectors: every logit ties, loss = log(M-1)
    assert float(supcon_loss(tied, torch.tensor([0, 0, 1, 1]), 0.5)) == pytest.approx(math.log(3), abs=1e-9)


def test_class_rules():
    from mmsa_core.losses import class_labels

    y = torch.tensor([-3.4, -1.6, -0.2, 0.0, 0.4, 2.5, 3.0])
    assert class_labels(y, "sign2").tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert class_labels(y, "sign3").tolist() == [0, 0, 0, 1, 2, 2, 2]
    assert class_labels(y, "round7").tolist() == [0, 1, 3, 3, 3, 5, 6]
    with pytest.raises(ValueError, match="sign2"):
        class_labels(y, "sign5")
