"""MM-CKD: the MVSC term against loop-based definitions, the students' masked inputs, stop-gradient,
separate weights, the method's facts, and training runs (overfit, modality subsets, resume)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmsa_core.config import RunConfig
from mmsa_core.data.masking import RATES, UNK_ID, masked_split
from mmsa_core.data.masking_torch import mask_batch
from mmsa_core.losses import class_labels
from mmsa_core.methods import get_method
from mmsa_core.methods.mmckd import TERMS, Params
from mmsa_core.methods.mmckd import runtime as ckd_runtime
from mmsa_core.methods.mmckd.losses import mvsc_loss
from mmsa_core.methods.runtime import build_runtime
from mmsa_core.trainer import (
    STATE_FILE,
    evaluate,
    prepare_batch,
    seed_everything,
    train,
)
from tests.core.conftest import run_config, tiny_config

METHOD = get_method("mmckd")
FAST = dict(method="mmckd", av_layers=1)


@pytest.fixture(scope="module")
def tiny_data():
    from mmsa_core.data import load_dataset

    return load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(96, 48, 48))


def _batch(data, n=16, seed=0):
    from mmsa_core.data.batching import make_loader

    loader = make_loader(data.splits["train"], batch_size=n, shuffle=True, seed=seed)
    return prepare_batch(next(iter(loader)), torch.device("cpu"), True)


def _runtime(data, seed=0, **values):
    cfg = tiny_config(**{**FAST, "batch_size": 16, **values})
    torch.set_num_threads(cfg.num_threads)  # as the trainer does (1: the suite shares 2 cores)
    seed_everything(seed, True)
    return build_runtime(cfg, data, "cpu")


# ------------------------------------------------------------------------------------------------
# loop-based definitions (pure Python over float64 entries)


def _cos(x, y) -> float:
    return float(x @ y) / (float(x.norm()) * float(y.norm()))


def _rule(y: float, rule: str) -> int:
    if rule == "sign2":
        return int(y >= 0)
    if rule == "sign3":
        return 0 if y < 0 else (1 if y == 0 else 2)
    return int(round(min(max(y, -3.0), 3.0))) + 3


def _vectors(views):
    """(N, V, D) -> the view-major list: entry v·N + i = view v of sample i."""
    n, v = views.shape[:2]
    return [views[i, j] for j in range(v) for i in range(n)]


def supcon_direct(views, scores, tau, rule="sign2"):
    n, v = views.shape[:2]
    z = _vectors(views)
    c = [_rule(float(scores[i]), rule) for _ in range(v) for i in range(n)]
    total, anchors = 0.0, 0
    for a in range(len(z)):
        others = [k for k in range(len(z)) if k != a]
        pos = [p for p in others if c[p] == c[a]]
        if not pos:
            continue
        den = sum(math.exp(_cos(z[a], z[k]) / tau) for k in others)
        total += -sum(_cos(z[a], z[p]) / tau - math.log(den) for p in pos) / len(pos)
        anchors += 1
    return total / anchors if anchors else 0.0


def supcr_direct(views, scores, tau):
    n, v = views.shape[:2]
    z = _vectors(views)
    y = [float(scores[i]) for _ in range(v) for i in range(n)]
    m = len(z)
    total = 0.0
    for a in range(m):
        for p in range(m):
            if p == a:
                continue
            ks = [k for k in range(m) if k != a and abs(y[a] - y[k]) >= abs(y[a] - y[p])]
            den = sum(math.exp(_cos(z[a], z[k]) / tau) for k in ks)
            total += _cos(z[a], z[p]) / tau - math.log(den)
    return -total / (m * (m - 1))


def _views(n, v, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, v, d, generator=g, dtype=torch.float64)


TIES = [-1.5, 0.0, 0.0, 0.5, 0.5, 2.5, -3.2]  # ties in score and in class, both signs


# ------------------------------------------------------------------------------------------------
# the MVSC term


@pytest.mark.parametrize("rule", ["sign2", "sign3", "round7"])
@pytest.mark.parametrize("tau", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("v", [2, 3, 4])
def test_mvsc_supcon_matches_the_loop(rule, tau, v):
    views, y = _views(len(TIES), v), torch.tensor(TIES, dtype=torch.float64)
    assert class_labels(y, rule).tolist() == [_rule(s, rule) for s in TIES]
    got = float(mvsc_loss(views, y, kind="supcon", tau=tau, class_rule=rule))
    assert got == pytest.approx(supcon_direct(views, y, tau, rule), abs=1e-9)


@pytest.mark.parametrize("tau", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("v", [2, 3])
def test_mvsc_supcr_matches_the_loop(tau, v):
    views, y = _views(len(TIES), v, seed=1), torch.tensor(TIES, dtype=torch.float64)
    got = float(mvsc_loss(views, y, kind="supcr", tau=tau))
    assert got == pytest.approx(supcr_direct(views, y, tau), abs=1e-9)


@pytest.mark.parametrize("kind", ["supcon", "supcr"])
def test_mvsc_batch_of_one_and_all_same_labels(kind):
    direct = (lambda w, s, t: supcon_direct(w, s, t)) if kind == "supcon" else supcr_direct
    for n, v in ((1, 2), (1, 3), (5, 3)):
        views = _views(n, v, seed=n + v)
        y = torch.full((n,), 0.7, dtype=torch.float64)  # every vector has the same label / class
        got = mvsc_loss(views, y, kind=kind, tau=0.2)
        assert float(got) == pytest.approx(direct(views, y, 0.2), abs=1e-9)
        assert torch.isfinite(got)


@pytest.mark.parametrize("kind", ["supcon", "supcr"])
def test_mvsc_temperature_scaling_and_gradients(kind):
    views, y = _views(len(TIES), 3, seed=2), torch.tensor(TIES, dtype=torch.float64)
    values = [float(mvsc_loss(views, y, kind=kind, tau=t)) for t in (0.05, 0.1, 0.5)]
    assert len(set(values)) == 3  # τ acts
    # identical views of the same sample (the teacher and a student that saw the same input) and a
    # rescaled vector change nothing: the vectors are normalised
    scaled = views.clone()
    scaled[:, 1] *= 7.0
    assert float(mvsc_loss(scaled, y, kind=kind, tau=0.1)) == pytest.approx(values[1], abs=1e-9)
    leaf = views.clone().requires_grad_(True)
    mvsc_loss(leaf, y, kind=kind, tau=0.1).backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


def test_mvsc_bad_shapes():
    with pytest.raises(ValueError, match="V >= 2"):
        mvsc_loss(_views(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="kind"):
        mvsc_loss(_views(4, 2), torch.zeros(4), kind="infonce")


# ------------------------------------------------------------------------------------------------
# the students' inputs


def _record(module):
    seen = []
    handle = module.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    return seen, handle


def _expected_masks(runtime, batch, state, rate, k):
    g = torch.Generator()
    g.set_state(state)
    return [mask_batch(batch, rate, generator=g, unk_id=UNK_ID, modalities="tav") for _ in range(k)]


def _same(a, b) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in
               ("text_ids", "text_mask", "text_type", "audio", "audio_mask", "vision", "vision_mask", "labels"))


@pytest.mark.parametrize("shared", [True, False])
def test_students_see_masked_copies_and_the_teacher_the_complete_batch(tiny_data, shared):
    rt = _runtime(tiny_data, shared_weights=shared, students=2, rate=0.3)
    batch = _batch(tiny_data)
    original = {f: getattr(batch, f).clone() for f in ("text_ids", "audio", "vision", "text_mask")}
    recorders = [_record(core.encoders) for core in rt.model.cores]
    state = rt.generator.get_state()
    rt.training_terms(batch, 1)
    for _, handle in recorders:
        handle.remove()
    seen = recorders[0][0] if shared else [s for rec, _ in recorders for s in rec]
    assert len(seen) == 3  # teacher, then student 0, student 1 (each copy sees its own with separate weights)
    if not shared:
        assert all(len(rec) == 1 for rec, _ in recorders)
    teacher, students = seen[0], seen[1:]
    assert teacher is batch and all(torch.equal(getattr(batch, f), v) for f, v in original.items())
    expected = _expected_masks(rt, batch, state, 0.3, 2)
    for got, want in zip(students, expected):
        assert _same(got, want)
        dropped_t = got.text_ids != batch.text_ids
        assert dropped_t.any() and torch.all(got.text_ids[dropped_t] == UNK_ID)
        assert torch.all(got.text_ids[:, 0] == batch.text_ids[:, 0])  # [CLS] kept
        last = batch.text_mask.sum(1) - 1
        rows = torch.arange(len(batch))
        assert torch.equal(got.text_ids[rows, last], batch.text_ids[rows, last])  # [SEP] kept
        for key in ("audio", "vision"):
            x, x0, valid = getattr(got, key), getattr(batch, key), getattr(batch, f"{key}_mask")
            zeroed = (x == 0).all(-1) & ~(x0 == 0).all(-1)
            assert zeroed.any() and not (zeroed & ~valid).any()
            frac = zeroed.sum().item() / valid.sum().item()
            assert 0.15 < frac < 0.45, (key, frac)
        assert torch.equal(got.text_mask, batch.text_mask) and torch.equal(got.audio_mask, batch.audio_mask)
    assert not torch.equal(students[0].text_ids, students[1].text_ids)  # one draw per student


def test_a_fresh_mask_for_every_batch(tiny_data):
    rt = _runtime(tiny_data, students=1)
    batch = _batch(tiny_data)
    seen, handle = _record(rt.model.teacher.encoders)
    rt.training_terms(batch, 1)
    rt.training_terms(batch, 1)
    handle.remove()
    first, second = seen[1], seen[3]
    assert seen[0] is batch and seen[2] is batch
    assert not torch.equal(first.text_ids, second.text_ids)
    assert not torch.equal(first.audio, second.audio)


def test_whole_modality_drop_students(tiny_data):
    rt = _runtime(tiny_data, students=2, mask="modality", rate=0.5, mask_modalities="av")
    batch = _batch(tiny_data, n=32)
    seen, handle = _record(rt.model.teacher.encoders)
    rt.training_terms(batch, 1)
    handle.remove()
    for s in seen[1:]:
        assert torch.equal(s.text_ids, batch.text_ids)  # text untouched
        for key in ("audio", "vision"):
            gone = ~getattr(s, f"{key}_mask").any(1)
            assert 3 < int(gone.sum()) < 29
            assert torch.all(getattr(s, key)[gone] == 0)
            assert torch.equal(getattr(s, key)[~gone], getattr(batch, key)[~gone])


def test_only_configured_modalities_are_masked(tiny_data):
    rt = _runtime(tiny_data, students=1, modalities="ta", rate=0.5)
    assert rt.masked == "ta"
    batch = _batch(tiny_data)
    seen, handle = _record(rt.model.teacher.encoders)
    rt.training_terms(batch, 1)
    handle.remove()
    assert seen[1].vision is batch.vision and not torch.equal(seen[1].audio, batch.audio)
    assert rt.unk_id == UNK_ID  # the run's tokenizer's unk id


# ------------------------------------------------------------------------------------------------
# stop-gradient, separate weights, prediction


@pytest.mark.parametrize("stop_grad", [False, True])
def test_stop_gradient_keeps_mvsc_away_from_the_teacher(tiny_data, stop_grad):
    rt = _runtime(tiny_data, stop_grad=stop_grad, dropout=0.0, disabled_losses=["student_task"])
    outs = []
    handle = rt.model.teacher.register_forward_hook(lambda mod, args, out: outs.append(out))
    terms = rt.training_terms(_batch(tiny_data), 1)
    handle.remove()
    assert set(terms) == {"task", "mvsc"} and len(outs) == 3
    g_teacher, *g_students = torch.autograd.grad(terms["mvsc"], [o.fused for o in outs], allow_unused=True)
    if stop_grad:
        assert g_teacher is None or not g_teacher.any()
    else:
        assert g_teacher is not None and g_teacher.abs().sum() > 0
    assert all(g is not None and g.abs().sum() > 0 for g in g_students)
    # the value does not depend on the switch (same weights, same masks)
    twin = _runtime(tiny_data, stop_grad=not stop_grad, dropout=0.0, disabled_losses=["student_task"])
    again = twin.training_terms(_batch(tiny_data), 1)["mvsc"].detach()
    assert float(again) == pytest.approx(float(terms["mvsc"].detach()), abs=1e-6)


def test_separate_weights_are_separate_parameter_sets(tiny_data):
    rt = _runtime(tiny_data, shared_weights=False, students=2)
    cores = rt.model.cores
    assert len(cores) == 3 and rt.model.student(0) is cores[1] and rt.model.student(1) is cores[2]
    ids = [{id(p) for p in c.parameters()} for c in cores]
    ptrs = [{p.data_ptr() for p in c.parameters()} for c in cores]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not ids[i] & ids[j] and not ptrs[i] & ptrs[j]
    first = [next(c.encoders.streams["a"].parameters()) for c in cores]
    assert not torch.equal(first[0], first[1])  # independently initialised
    groups = rt.parameter_groups()
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in rt.model.parameters())  # every parameter once
    assert len(groups[0]["params"]) == 3 * len(list(cores[0].text_encoder.parameters()))
    # one step moves each copy through its own gradients
    rt.model.zero_grad()
    rt.total_loss(rt.training_terms(_batch(tiny_data), 1)).backward()
    for c in cores:
        assert all(p.grad is not None for p in c.head.parameters())
    shared = _runtime(tiny_data, students=3)
    assert len(shared.model.cores) == 1 and shared.model.student(2) is shared.model.teacher


def test_predict_with_teacher_or_student(tiny_data):
    batch = _batch(tiny_data)
    for shared in (True, False):
        a = _runtime(tiny_data, shared_weights=shared)
        b = _runtime(tiny_data, shared_weights=shared, predict_with="student")
        a.model.eval(), b.model.eval()
        with torch.no_grad():
            pa, pb = a.predict(batch), b.predict(batch)
            assert torch.equal(pa, a.model(batch).prediction)  # the teacher by default
        if shared:  # student 0 is the teacher's network; evaluation applies no mask
            assert torch.equal(pa, pb)
        else:
            assert not torch.equal(pa, pb)
            with torch.no_grad():
                assert torch.equal(pb, b.model.cores[1](batch).prediction)


def test_concat_fusion_trains(tiny_data):
    rt = _runtime(tiny_data, fusion="concat")
    terms = rt.training_terms(_batch(tiny_data), 1)
    assert set(terms) == set(TERMS) and all(torch.isfinite(v) for v in terms.values())
    rt_t = _runtime(tiny_data, fusion="concat", modalities="t")
    assert torch.isfinite(rt_t.total_loss(rt_t.training_terms(_batch(tiny_data), 1)))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_student_task_is_the_sum_or_mean_of_the_students_l1(tiny_data, reduction):
    rt = _runtime(tiny_data, students=3, student_reduction=reduction, dropout=0.0)
    outs = []
    handle = rt.model.teacher.register_forward_hook(lambda mod, args, out: outs.append(out))
    batch = _batch(tiny_data)
    terms = rt.training_terms(batch, 1)
    handle.remove()
    per = [float((o.prediction - batch.labels).abs().mean().detach()) for o in outs[1:]]
    want = sum(per) if reduction == "sum" else sum(per) / 3
    assert float(terms["student_task"].detach()) == pytest.approx(want, rel=1e-6)
    assert float(terms["task"].detach()) == pytest.approx(float((outs[0].prediction - batch.labels).abs().mean().detach()), rel=1e-6)


# ------------------------------------------------------------------------------------------------
# the method's facts


def test_facts_space_and_published():
    assert METHOD.terms == ("task", "student_task", "mvsc") and TERMS == METHOD.terms
    assert METHOD.published == "none published (no public code, equations or result tables were found)"
    assert "2410.08692" in METHOD.citation
    space = {p.name: p for p in METHOD.space}
    assert set(space) == {"mmckd.lam", "mmckd.tau", "mmckd.students", "mmckd.rate", "mmckd.stop_grad",
                          "mmckd.contrast"}
    assert (space["mmckd.lam"].low, space["mmckd.lam"].high, space["mmckd.lam"].log) == (1e-3, 1.0, True)
    assert (space["mmckd.tau"].low, space["mmckd.tau"].high, space["mmckd.tau"].log) == (0.05, 1.0, True)
    assert space["mmckd.students"].kind == "int" and (space["mmckd.students"].low, space["mmckd.students"].high) == (1, 3)
    assert (space["mmckd.rate"].low, space["mmckd.rate"].high, space["mmckd.rate"].log) == (0.1, 0.7, False)
    assert space["mmckd.stop_grad"].kind == "categorical" and set(space["mmckd.stop_grad"].choices) == {False, True}
    assert set(space["mmckd.contrast"].choices) == {"supcon", "supcr"}
    p = Params()
    assert (p.lam, p.tau, p.students, p.rate, p.shared_weights, p.contrast, p.class_rule) == \
        (0.1, 0.1, 2, 0.2, True, "supcon", "sign2")
    cfg = run_config(method="mmckd")
    assert METHOD.loss_weights(cfg) == {"task": 1.0, "student_task": 1.0, "mvsc": 0.1}
    assert METHOD.active_terms(run_config(method="mmckd", lam=0.0)) == ("task", "student_task")
    assert set(METHOD.term_needs) == {"student_task", "mvsc"}
    assert METHOD.replacement("supcon", "supcr").changes == {"contrast": "supcr"}
    mosei = RunConfig.paper("mmckd", "mosei")
    assert mosei.data == "synthetic-mosei" and mosei.params == Params()
    start = METHOD.search_space().start_point(cfg.to_dict())
    assert start["mmckd.students"] == 2 and start["mmckd.contrast"] == "supcon"


def test_bad_configuration_names_the_field():
    for field, value, pattern in [("students", 0, r"mmckd\.students=0 must be an integer >= 1"),
                                  ("rate", 1.5, r"mmckd\.rate=1\.5 must be in \[0, 1\]"),
                                  ("tau", 0.0, r"mmckd\.tau=0\.0 must be > 0"),
                                  ("lam", -1.0, r"mmckd\.lam=-1\.0 must be >= 0"),
                                  ("mask_modalities", "tx", r"mmckd\.mask_modalities='tx'"),
                                  ("mask_modalities", "", r"mmckd\.mask_modalities=''")]:
        with pytest.raises(ValueError, match=pattern):
            run_config(method="mmckd", **{field: value})
    with pytest.raises(ValueError, match=r"mmckd\.contrast.*supcr"):
        run_config(method="mmckd", contrast="infonce")
    with pytest.raises(ValueError, match=r"mmckd\.mask.*names neither 'a' nor 'v'"):
        run_config(method="mmckd", mask="modality", mask_modalities="t")
    with pytest.raises(ValueError, match=r"mmckd\.mask_modalities='v'.*masks no configured"):
        run_config(method="mmckd", modalities="ta", mask_modalities="v")
    with pytest.raises(ValueError, match=r"mmckd\.mask='modality' masks no configured"):
        run_config(method="mmckd", modalities="t", mask="modality")
    with pytest.raises(ValueError, match=r"unknown term\(s\) \['supcr_fusion'\]"):
        run_config(method="mmckd", disabled_losses=["supcr_fusion"])
    with pytest.raises(ValueError, match="students"):
        run_config(method="mmckd", students="two")
    assert Params().problems() == []


def test_the_shipped_ablation_spec():
    from ablations.spec import load_spec

    spec = load_spec("ablations/specs/mmckd_terms.yaml")
    assert spec.method == "mmckd" and spec.seeds == (1111, 1112, 1113) and spec.reference == "full"
    disabled = {v.name: set(v.disable) for v in spec.variants}
    assert disabled["full"] == set()
    for term in ("student_task", "mvsc"):
        assert any(d == {term} for d in disabled.values())


# ------------------------------------------------------------------------------------------------
# training


@pytest.mark.parametrize("modalities", ["t", "ta", "tv", "tav"])
def test_trains_one_epoch_in_every_modality_subset(tiny_data, modalities):
    res = train(tiny_config(**FAST, modalities=modalities, max_epochs=1), tiny_data, progress=False)
    assert res.epochs_run == 1 and set(res.history[0].train) == {"loss", *TERMS}
    assert all(math.isfinite(v) for v in res.history[0].train.values())


def test_disabled_terms_are_not_computed(tiny_data, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("mvsc was computed although disabled")

    monkeypatch.setattr(ckd_runtime, "mvsc_loss", forbidden)
    rt = _runtime(tiny_data, disabled_losses=["mvsc"])
    assert set(rt.training_terms(_batch(tiny_data), 1)) == {"task", "student_task"}
    rt = _runtime(tiny_data, lam=0.0)
    assert set(rt.training_terms(_batch(tiny_data), 1)) == {"task", "student_task"}
    # both student terms off: no student is masked or run
    rt = _runtime(tiny_data, disabled_losses=["student_task", "mvsc"])
    state = rt.generator.get_state()
    seen, handle = _record(rt.model.teacher.encoders)
    assert set(rt.training_terms(_batch(tiny_data), 1)) == {"task"}
    handle.remove()
    assert len(seen) == 1 and torch.equal(rt.generator.get_state(), state)
    monkeypatch.undo()
    rt = _runtime(tiny_data, disabled_losses=["student_task"])
    assert set(rt.training_terms(_batch(tiny_data), 1)) == {"task", "mvsc"}


def test_the_mask_generator_is_in_the_checkpoint_and_makes_the_resume_exact(tiny_data, tmp_path, monkeypatch):
    """(Bit-exact resume itself: tests/core/test_methods_registry.py, for every method.)"""
    full = train(tiny_config(**FAST, max_epochs=2), tiny_data, progress=False)
    part = train(tiny_config(**FAST, max_epochs=1), tiny_data, checkpoint_dir=tmp_path / "a", progress=False)
    assert part.epochs_run == 1
    payload = torch.load(tmp_path / "a" / STATE_FILE, weights_only=False)
    assert set(payload["method_state"]) == {"mask_generator"}
    # the generator's state is what makes it exact: resuming without it draws other masks
    train(tiny_config(**FAST, max_epochs=1), tiny_data, checkpoint_dir=tmp_path / "b", progress=False)
    monkeypatch.setattr(ckd_runtime.MMCKDRuntime, "load_state_dict", lambda self, state: None)
    forgetful = train(tiny_config(**FAST, max_epochs=2), tiny_data, checkpoint_dir=tmp_path / "b", progress=False)
    assert forgetful.history[-1].train != full.history[-1].train


def test_robustness_protocol_evaluation(tiny_data):
    """Test on masked copies of the test split: the caller masks the data; predict does not."""
    rt = _runtime(tiny_data)
    cfg, device = rt.cfg, torch.device("cpu")
    test = tiny_data.splits["test"]
    clean = evaluate(rt, test, cfg, device)
    curve = {r: evaluate(rt, masked_split(test, r, unk_id=rt.unk_id), cfg, device) for r in (0.0, 0.5, 1.0)}
    assert curve[0.0] == clean and curve[1.0] != clean
    assert all(np.isfinite(m["mae"]) for m in curve.values()) and 0.0 in RATES


def test_the_facts_import_no_torch():
    import subprocess
    import sys

    code = "import sys, mmsa_core.methods.mmckd; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
