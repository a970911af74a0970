"""Self-MM: the ULGM label update against a hand-computed example, the in-batch order, the epoch-1
zero weights, the loss terms against loop-based definitions, the method's facts, training runs,
bit-exact resume with the label bank in the checkpoint, the trainer's labels and weights against a
transcription of Self-MM's training (ULGM and accumulated Adam steps with coupled decay), and fp32
bank features under bf16 autocast."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from mmsa_core.config import RunConfig
from mmsa_core.data.batching import make_loader
from mmsa_core.methods import get_method
from mmsa_core.methods.runtime import build_runtime
from mmsa_core.methods.selfmm import TERMS, Params
from mmsa_core.methods.selfmm.runtime import SelfMMRuntime
from mmsa_core.methods.selfmm.ulgm import LabelBank
from mmsa_core.trainer import STATE_FILE, build_optimizer, prepare_batch, train
from tests.core.conftest import run_config, tiny_config

METHOD = get_method("selfmm")
FAST = dict(method="selfmm", av_layers=1)


@pytest.fixture(scope="module")
def tiny_data():
    from mmsa_core.data import load_dataset

    return load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(96, 48, 48))


def first_batch(data, size=16, start=0):
    loader = make_loader(data.splits["train"], batch_size=size, shuffle=False)
    for i, batch in enumerate(loader):
        if i == start:
            return prepare_batch(batch, "cpu", True)
    raise IndexError(start)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


# ------------------------------------------------------------------------------------------------
# the ULGM against a hand-computed two-epoch example


def test_label_update_matches_a_hand_computed_two_epoch_example():
    # 4 training samples; sample 3 has y_M = 0 and far-away features: excluded from both classes
    y_m = torch.tensor([1.5, 0.5, -1.0, 0.0])
    bank = LabelBank(y_m, {"f": 2, "t": 2}, clip=3.0, exclude_zero=True, eps=1e-8)

    # epoch 1, one batch of all four: labels stay y_M, features written, centres recomputed
    bank.step({"f": t([0, -4], [0, 4], [3, 0], [100, 100]),
               "t": t([0, 2], [0, -2], [0, 3], [50, -50])}, torch.tensor([0, 1, 2, 3]), epoch=1)
    assert bank.labels["t"].tolist() == [1.5, 0.5, -1.0, 0.0]
    # f: pos = mean{(0,-4), (0,4)} = (0,0), neg = (3,0);  t: pos = mean{(0,2), (0,-2)} = (0,0), neg = (0,3)
    assert bank.centres["f"]["pos"].tolist() == [0, 0] and bank.centres["f"]["neg"].tolist() == [3, 0]
    assert bank.centres["t"]["pos"].tolist() == [0, 0] and bank.centres["t"]["neg"].tolist() == [0, 3]

    # epoch 2, batch A = samples 0 and 2, with the centres of epoch 1's last batch (above)
    bank.step({"f": t([0, 4], [3, 4]), "t": t([0, -4], [0, 6])}, torch.tensor([0, 2]), epoch=2)
    # sample 0: d_fp = |(0,4)-(0,0)| = 4, d_fn = |(0,4)-(3,0)| = 5 -> δ_f = (5-4)/4 = 0.25
    #           d_sp = |(0,-4)-(0,0)| = 4, d_sn = |(0,-4)-(0,3)| = 7 -> δ_s = (7-4)/4 = 0.75
    #           ŷ = ½·(0.75/0.25)·1.5 + ½·(1.5 + 0.75 - 0.25) = 2.25 + 1.0 = 3.25 -> clamped to 3.0
    #           y_t = (2-1)/(2+1)·1.5 + 2/(2+1)·3.0 = 0.5 + 2.0 = 2.5
    # sample 2: d_fp = |(3,4)| = 5, d_fn = |(0,4)| = 4 -> δ_f = (4-5)/5 = -0.2
    #           d_sp = |(0,6)| = 6, d_sn = |(0,3)| = 3 -> δ_s = (3-6)/6 = -0.5
    #           ŷ = ½·(-0.5/-0.2)·(-1) + ½·(-1 - 0.5 + 0.2) = -1.25 - 0.65 = -1.9 (inside [-3, 3])
    #           y_t = ⅓·(-1) + ⅔·(-1.9) = -1.6
    assert bank.labels["t"].tolist() == pytest.approx([2.5, 0.5, -1.6, 0.0], abs=1e-6)
    assert bank.labels["f"].tolist() == [1.5, 0.5, -1.0, 0.0], "the fused label is the ground truth"
    # new centres: f pos = mean{(0,4), (0,4)} = (0,4), neg = (3,4);
    #              t (labels 2.5, 0.5, -1.6, 0): pos = mean{(0,-4), (0,-2)} = (0,-3), neg = (0,6)
    assert bank.centres["f"]["pos"].tolist() == [0, 4] and bank.centres["f"]["neg"].tolist() == [3, 4]
    assert bank.centres["t"]["pos"].tolist() == [0, -3] and bank.centres["t"]["neg"].tolist() == [0, 6]

    # epoch 2, batch B = sample 1, with batch A's centres (not with centres that include batch B)
    bank.step({"f": t([0, 0]), "t": t([0, 1.5])}, torch.tensor([1]), epoch=2)
    # d_fp = |(0,0)-(0,4)| = 4, d_fn = |(0,0)-(3,4)| = 5 -> δ_f = 0.25
    # d_sp = |(0,1.5)-(0,-3)| = 4.5, d_sn = |(0,1.5)-(0,6)| = 4.5 -> δ_s = 0
    # ŷ = 0 + ½·(0.5 + 0 - 0.25) = 0.125;  y_t = ⅓·0.5 + ⅔·0.125 = 0.25
    # (with centres that already held batch B's features: y_t = 0.116; with epoch 1's: y_t = -1.83)
    assert bank.labels["t"].tolist() == pytest.approx([2.5, 0.25, -1.6, 0.0], abs=1e-6)
    assert bank.weights("t", torch.tensor([0, 1, 2, 3])).tolist() == pytest.approx(
        [math.tanh(1.0), math.tanh(0.25), math.tanh(0.6), 0.0], abs=1e-6)


def test_zero_labels_join_the_positives_without_exclude_zero():
    y_m = torch.tensor([1.0, 0.0, -1.0])
    bank = LabelBank(y_m, {"f": 1, "t": 1}, exclude_zero=False)
    bank.step({"f": t([2], [4], [-1]), "t": t([2], [4], [-1])}, torch.tensor([0, 1, 2]), epoch=1)
    assert bank.centres["f"]["pos"].tolist() == [3.0]  # mean{2, 4}: zero counts as positive
    strict = LabelBank(y_m, {"f": 1, "t": 1}, exclude_zero=True)
    strict.step({"f": t([2], [4], [-1]), "t": t([2], [4], [-1])}, torch.tensor([0, 1, 2]), epoch=1)
    assert strict.centres["f"]["pos"].tolist() == [2.0]


def test_an_empty_class_keeps_its_previous_centre():
    bank = LabelBank(torch.tensor([1.0, 2.0]), {"f": 2, "t": 2})
    bank.step({"f": t([1, 1], [3, 3]), "t": t([1, 1], [3, 3])}, torch.tensor([0, 1]), epoch=1)
    assert bank.centres["f"]["pos"].tolist() == [2, 2]
    assert bank.centres["f"]["neg"].tolist() == [0, 0]  # no negative sample: stays at its start (no NaN)


def test_momentum_coefficients_follow_the_epoch():
    # centres at ±(1, 0) for both keys; a feature at the positive centre's side gives δ_s = δ_f
    bank = LabelBank(torch.tensor([1.0, -1.0]), {"f": 1, "t": 1})
    bank.step({"f": t([1], [-1]), "t": t([1], [-1])}, torch.tensor([0, 1]), epoch=1)
    bank.labels["t"][0] = 0.0  # pretend an earlier epoch moved it
    # f = t = (2): d_p = 1, d_n = 3 -> δ_f = δ_s = 2, α = 1 (up to ε), ŷ = ½·1 + ½·1 = 1
    bank.update_labels({"f": t([2]), "t": t([2])}, torch.tensor([0]), epoch=3)
    assert float(bank.labels["t"][0]) == pytest.approx(2 / 4 * 0.0 + 2 / 4 * 1.0, abs=1e-6)


# ------------------------------------------------------------------------------------------------
# the runtime: order, weights, terms


def _expected_labels(bank_before, features, index, epoch, clip=3.0, eps=1e-8):
    """Loop-based label update for one batch from a snapshot of the centres and labels."""
    def dist(x, c):
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(x, c, strict=True)))

    centres = {k: {c: v.tolist() for c, v in cs.items()} for k, cs in bank_before["centres"].items()}
    features = {k: v.tolist() for k, v in features.items()}

    def delta(key, x):
        d_p, d_n = dist(x, centres[key]["pos"]), dist(x, centres[key]["neg"])
        return (d_n - d_p) / (d_p + eps)

    out = {}
    for key in ("t", "a", "v"):
        out[key] = []
        for row, i in enumerate(index.tolist()):
            y_m = float(bank_before["labels"]["f"][i])
            d_f, d_s = delta("f", features["f"][row]), delta(key, features[key][row])
            target = 0.5 * (d_s / (d_f + eps)) * y_m + 0.5 * (y_m + d_s - d_f)
            target = min(max(target, -clip), clip)
            y_s = float(bank_before["labels"][key][i])
            out[key].append((epoch - 1) / (epoch + 1) * y_s + 2 / (epoch + 1) * target)
    return out


def test_runtime_updates_a_batch_with_the_previous_batchs_centres(tiny_data):
    cfg = tiny_config(**FAST, batch_size=16)
    torch.manual_seed(0)
    runtime = build_runtime(cfg, tiny_data)
    batches = [first_batch(tiny_data, 16, k) for k in range(2)]
    for b in batches:  # "epoch 1": fill part of the bank
        runtime.on_epoch_start(1)
        runtime.training_terms(b, epoch=1)
        runtime.after_backward(b)
    assert torch.equal(runtime.bank.labels["t"], runtime.bank.labels["f"]), "epoch 1 leaves the labels"
    runtime.on_epoch_start(2)
    batch = batches[0]
    runtime.training_terms(batch, epoch=2)
    before = runtime.bank.state_dict()
    features = {k: v.clone() for k, v in runtime._pending[1].items()}
    # the loss of this batch used the labels before its own update
    assert torch.equal(runtime.bank.labels["t"], before["labels"]["t"])
    runtime.after_backward(batch)
    want = _expected_labels(before, features, batch.index, epoch=2)
    for key in ("t", "a", "v"):
        # float32 against float64: δ_s/δ_f amplifies rounding where δ_f is small
        assert runtime.bank.labels[key][batch.index].tolist() == pytest.approx(want[key], rel=1e-3, abs=1e-4)
        # then the batch's features are in the bank and the centres are recomputed from it
        assert torch.equal(runtime.bank.features[key][batch.index], features[key])
        lab, bank = runtime.bank.labels[key].tolist(), runtime.bank.features[key].tolist()
        pos = [row for row, y in zip(bank, lab, strict=True) if y > 0]
        mean = [sum(col) / len(pos) for col in zip(*pos)]
        assert runtime.bank.centres[key]["pos"].tolist() == pytest.approx(mean, abs=1e-5)


def test_epoch_one_trains_only_the_fused_head(tiny_data):
    runtime = build_runtime(tiny_config(**FAST), tiny_data)
    batch = first_batch(tiny_data)
    runtime.on_epoch_start(1)
    terms = runtime.training_terms(batch, epoch=1)
    assert all(float(terms[f"uni_{m}"].detach()) == 0.0 for m in "tav"), "w_s = tanh|y_M - y_M| = 0"
    runtime.total_loss(terms).backward()
    for m in "tav":
        grads = [p.grad for p in runtime.model.heads[m].parameters()]
        assert all(g is None or not g.any() for g in grads), f"head {m} must not learn in epoch 1"
    assert any(p.grad is not None and p.grad.any() for p in runtime.model.heads["f"].parameters())


def test_terms_match_a_loop_based_weighted_l1(tiny_data):
    runtime = build_runtime(tiny_config(**FAST), tiny_data)
    batch = first_batch(tiny_data)
    g = torch.Generator().manual_seed(3)
    for m in "tav":  # generated labels away from y_M, one equal to it (weight 0)
        runtime.bank.labels[m] += torch.randn(len(runtime.bank), generator=g)
        runtime.bank.labels[m][batch.index[0]] = runtime.bank.labels["f"][batch.index[0]]
    seen = {}
    for k, head in runtime.model.heads.items():
        head.register_forward_hook(lambda mod, inp, out, k=k: seen.__setitem__(k, out[0].detach()))
    terms = {k: v.detach() for k, v in runtime.training_terms(batch, epoch=3).items()}
    y = batch.labels.tolist()
    l1 = sum(abs(p - q) for p, q in zip(seen["f"].tolist(), y, strict=True)) / len(y)
    assert float(terms["task"]) == pytest.approx(l1, abs=1e-6)
    for m in "tav":
        total = 0.0
        for row, i in enumerate(batch.index.tolist()):
            y_s, y_m = float(runtime.bank.labels[m][i]), float(runtime.bank.labels["f"][i])
            total += math.tanh(abs(y_s - y_m)) * abs(float(seen[m][row]) - y_s)
        assert float(terms[f"uni_{m}"]) == pytest.approx(total / len(y), abs=1e-6)


def test_predict_is_the_fused_head_only(tiny_data):
    runtime = build_runtime(tiny_config(**FAST), tiny_data)
    calls = []
    for k, head in runtime.model.heads.items():
        head.register_forward_hook(lambda *a, k=k: calls.append(k))
    runtime.model.eval()
    with torch.no_grad():
        pred = runtime.predict(first_batch(tiny_data))
        out = runtime.model(first_batch(tiny_data))
    assert calls == ["f", "f", "t", "a", "v"] and pred.shape == (16,)
    assert torch.equal(pred, out.prediction)


def test_parameter_groups_are_self_mms_five(tiny_data):
    cfg = tiny_config(**FAST, lr_audio=2e-3, lr_video=3e-4, weight_decay_text=0.01, weight_decay_audio=0.02,
                      weight_decay_video=0.03, weight_decay=0.04)
    runtime = build_runtime(cfg, tiny_data)
    groups = {g["name"]: g for g in runtime.parameter_groups()}
    assert list(groups) == ["text_encoder", "text_encoder_no_decay", "stream_a", "stream_v", "rest"]
    assert (groups["text_encoder"]["lr"], groups["text_encoder"]["weight_decay"]) == (cfg.lr_text, 0.01)
    assert groups["text_encoder_no_decay"]["weight_decay"] == 0.0
    assert (groups["stream_a"]["lr"], groups["stream_a"]["weight_decay"]) == (2e-3, 0.02)
    assert (groups["stream_v"]["lr"], groups["stream_v"]["weight_decay"]) == (3e-4, 0.03)
    assert (groups["rest"]["lr"], groups["rest"]["weight_decay"]) == (cfg.lr_other, 0.04)
    names = {id(p): n for n, p in runtime.model.named_parameters()}
    no_decay = [names[id(p)] for p in groups["text_encoder_no_decay"]["params"]]
    assert no_decay and all("bias" in n or "LayerNorm" in n for n in no_decay)
    assert {names[id(p)].split(".")[0] for p in groups["rest"]["params"]} == {"heads"}
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(runtime.model.parameters())), "each parameter once"
    assert runtime.accumulation_steps == 4
    assert build_runtime(cfg.with_params(update_epochs=2), tiny_data).accumulation_steps == 2


# ------------------------------------------------------------------------------------------------
# switches, modalities, configuration


@pytest.mark.parametrize("term", ["uni_t", "uni_a", "uni_v"])
def test_a_disabled_term_is_not_computed_and_its_head_not_run(tiny_data, term):
    cfg = dataclasses.replace(tiny_config(**FAST), disabled_losses=(term,))
    runtime = build_runtime(cfg, tiny_data)
    m = term[-1]
    calls = []
    runtime.model.heads[m].register_forward_hook(lambda *a: calls.append(m))
    batch = first_batch(tiny_data)
    terms = runtime.training_terms(batch, epoch=1)
    runtime.after_backward(batch)
    assert term not in terms and set(terms) == set(TERMS) - {term}
    assert calls == [] and m not in runtime.bank.keys


def test_without_unimodal_terms_there_is_no_label_bank(tiny_data):
    cfg = dataclasses.replace(tiny_config(**FAST), disabled_losses=("uni_t", "uni_a", "uni_v"))
    runtime = build_runtime(cfg, tiny_data)
    assert runtime.bank is None and runtime.state_dict() == {}
    batch = first_batch(tiny_data)
    assert set(runtime.training_terms(batch, epoch=2)) == {"task"}
    runtime.after_backward(batch)
    with pytest.raises(ValueError, match="keeps no label bank"):
        runtime.load_state_dict({"label_bank": {}})
    assert build_runtime(tiny_config(**FAST, uni_weight=0.0), tiny_data).bank is None


@pytest.mark.parametrize("modalities", ["ta", "tv", "tav"])
def test_trains_one_epoch_in_every_supported_modality_subset(tiny_data, modalities):
    res = train(tiny_config(**FAST, modalities=modalities, max_epochs=1), tiny_data, progress=False)
    assert set(res.history[0].train) == {"loss", "task", *(f"uni_{m}" for m in modalities)}
    assert all(math.isfinite(v) for v in res.best_test.values())


def test_facts_presets_and_search_space():
    assert METHOD.terms == TERMS == ("task", "uni_t", "uni_a", "uni_v")
    assert METHOD.modality_subsets == ("ta", "tv", "tav")
    assert METHOD.possible_terms(run_config(method="selfmm", modalities="tv")) == ("task", "uni_t", "uni_v")
    assert METHOD.loss_weights(run_config(method="selfmm", uni_weight=0.3)) == {
        "task": 1.0, "uni_t": 0.3, "uni_a": 0.3, "uni_v": 0.3}
    mosi, mosei = RunConfig.paper("selfmm", "mosi"), RunConfig.paper("selfmm", "mosei")
    assert (mosi.batch_size, mosi.lr_text, mosi.lr_other, mosi.weight_decay, mosi.patience) == (32, 5e-5, 1e-3, 1e-3, 8)
    assert mosi.params == Params() and mosi.params.update_epochs == 4
    assert (mosi.params.post_fusion_dim, mosi.params.post_text_dim, mosi.params.post_audio_dim,
            mosi.params.post_video_dim) == (128, 32, 16, 32)
    assert mosi.lr_gamma == 1.0 and mosi.select_metric == "mae"
    assert mosei.data == "synthetic-mosei" and mosei.weight_decay == 0.01 and mosei.params.lr_video == 1e-4
    for text in ("0.713", "0.798", "84.00", "85.98", "84.42", "85.95", "0.530", "0.765", "82.81", "85.17",
                 "82.53", "85.30"):
        assert text in METHOD.published
    space = {p.name: p for p in METHOD.space}
    uni = space["selfmm.uni_weight"]
    assert uni.log and (uni.low, uni.high) == (1e-2, 10)
    assert space["selfmm.update_epochs"].choices == (1, 2, 4, 8)
    assert not space["selfmm.post_audio_dim"].active({"modalities": "tv"})
    assert space["selfmm.post_audio_dim"].active({"modalities": "tav"})


@pytest.mark.parametrize("values, field", [
    (dict(update_epochs=0), "selfmm.update_epochs"),
    (dict(uni_weight=-1.0), "selfmm.uni_weight"),
    (dict(label_clip=0.0), "selfmm.label_clip"),
    (dict(post_text_dim=0), "selfmm.post_text_dim"),
    (dict(post_audio_dropout=1.0), "selfmm.post_audio_dropout"),
    (dict(lr_audio=0.0), "selfmm.lr_audio"),
    (dict(audio_out=-1), "selfmm.audio_out"),
    (dict(modalities="t"), "modalities"),
    (dict(disabled_losses=("uni_x",)), "disabled_losses"),
])
def test_bad_configuration_names_the_field(values, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        run_config(method="selfmm", **values)


def test_a_checkpoint_of_other_heads_is_refused(tiny_data):
    full = build_runtime(tiny_config(**FAST), tiny_data)
    ta = build_runtime(tiny_config(**FAST, modalities="ta"), tiny_data)
    with pytest.raises(ValueError, match=r"holds heads \['f', 't', 'a', 'v'\], this run has \['f', 't', 'a'\]"):
        ta.load_state_dict(full.state_dict())
    with pytest.raises(ValueError, match="no label bank"):
        full.load_state_dict({})


# ------------------------------------------------------------------------------------------------
# training


def test_the_unimodal_heads_learn_once_the_labels_move(tiny_data):
    """One batch as one "epoch" per step: the generated labels move from step 2, and the unimodal
    heads learn (the generic overfit test, tests/core/test_methods_registry.py, stays in epoch 1)."""
    cfg = tiny_config(**FAST, dropout=0.0, post_text_dropout=0.0, post_audio_dropout=0.0, lr_other=3e-3)
    torch.manual_seed(0)
    runtime = build_runtime(cfg, tiny_data)
    optimizer = build_optimizer(cfg, runtime)
    batch = first_batch(tiny_data)
    runtime.model.train()
    task = []
    for step in range(60):
        runtime.on_epoch_start(step + 1)  # one batch = one "epoch": the labels move from step 2
        terms = runtime.training_terms(batch, epoch=step + 1)
        optimizer.zero_grad()
        runtime.total_loss(terms).backward()
        runtime.after_backward(batch)
        optimizer.step()
        task.append(float(terms["task"].detach()))
    assert sum(task[-10:]) / 10 < 0.25 * task[0], (task[0], task[-10:])
    assert float(terms["uni_t"].detach()) > 0, "the unimodal heads learn once the labels moved"


def test_the_label_bank_is_in_the_checkpoint_and_resumes_exactly(tiny_data, tmp_path):
    cfg = tiny_config(**FAST, batch_size=16, max_epochs=3)  # 6 batches/epoch, steps after 4 and 6
    full = train(cfg, tiny_data, checkpoint_dir=tmp_path / "full", progress=False)
    part = train(dataclasses.replace(cfg, max_epochs=2), tiny_data, checkpoint_dir=tmp_path / "part",
                 progress=False)
    assert part.epochs_run == 2
    state = torch.load(tmp_path / "part" / STATE_FILE, weights_only=False)["method_state"]["label_bank"]
    assert not torch.equal(state["labels"]["t"], state["labels"]["f"]), "epoch 2 moved the labels"
    resumed = train(cfg, tiny_data, checkpoint_dir=tmp_path / "part", progress=False)
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    assert resumed.history[-1].train == full.history[-1].train
    assert resumed.history[-1].valid == full.history[-1].valid and resumed.best_test == full.best_test
    a = torch.load(tmp_path / "full" / STATE_FILE, weights_only=False)["method_state"]["label_bank"]
    b = torch.load(tmp_path / "part" / STATE_FILE, weights_only=False)["method_state"]["label_bank"]
    for part_name in ("labels", "features"):
        for k in a[part_name]:
            assert torch.equal(a[part_name][k], b[part_name][k]), (part_name, k)
    # the unimodal heads first learn in epoch 3: a sample's label moves in epoch 2 after its own loss
    assert [full.history[e].train["uni_t"] for e in (0, 1)] == [0.0, 0.0] and full.history[2].train["uni_t"] > 0


def test_the_registry_builds_the_self_mm_runtime(tiny_data):
    assert METHOD.runtime == "mmsa_core.methods.selfmm.runtime"
    assert type(build_runtime(tiny_config(**FAST), tiny_data)) is SelfMMRuntime


# ------------------------------------------------------------------------------------------------
# the trainer's Self-MM loop against a transcription of Self-MM's training (paper + MMSA's order)

H, ULGM_EPS = 3.0, 1e-8  # Self-MM's label clamp and the ε of δ and of δ_s/δ_f
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which Self-MM's code uses


class _ReferenceULGM:
    """Self-MM's label generation, written from the equations in NumPy float64."""

    def __init__(self, y_m, widths):
        self.y = {k: np.array(y_m, dtype=np.float64) for k in widths}  # "f" = y_M, never updated
        self.h = {k: np.zeros((len(y_m), w)) for k, w in widths.items()}
        self.c = {k: {"pos": np.zeros(w), "neg": np.zeros(w)} for k, w in widths.items()}

    def delta(self, k, feats):
        d_p = np.linalg.norm(feats - self.c[k]["pos"], axis=1)
        d_n = np.linalg.norm(feats - self.c[k]["neg"], axis=1)
        return (d_n - d_p) / (d_p + ULGM_EPS)

    def after_backward(self, feats, idx, epoch):
        if epoch > 1:  # ŷ_s from the centres as they are (the previous batch's), then the momentum
            y_m, delta_f = self.y["f"][idx], self.delta("f", feats["f"])
            for s in ("t", "a", "v"):
                delta_s = self.delta(s, feats[s])
                target = 0.5 * (delta_s / (delta_f + ULGM_EPS)) * y_m + 0.5 * (y_m + delta_s - delta_f)
                target = np.clip(target, -H, H)
                n = epoch
                self.y[s][idx] = (n - 1) / (n + 1) * self.y[s][idx] + 2 / (n + 1) * target
        for k in self.h:
            self.h[k][idx] = feats[k]
        # centres from every sample's current label, zero in neither class; an empty class keeps
        # its centre (the project's reconstruction: Self-MM's code would take a mean of nothing)
        for k in self.h:
            for name, members in (("pos", self.y[k] > 0), ("neg", self.y[k] < 0)):
                if members.any():
                    self.c[k][name] = self.h[k][members].mean(axis=0)


def _reference_selfmm(cfg, data, epochs):
    """Self-MM's training, transcribed: per batch L = mean|ŷ_M − y_M| + Σ_s mean(tanh|y_s − y_M|·|ŷ_s − y_s|)
    with the labels as they are, its gradient added to the group's sum, then the ULGM step; after
    every ``update_epochs`` batches (and after an epoch's last, the project's choice) one Adam step
    with coupled decay, g ← Σ_b ∇L_b + wd·p, on NumPy float64 master weights. The model's torch
    forward/backward gives ŷ, h and ∇L_b. Returns (labels, weights) after every epoch."""
    from mmsa_core.trainer import seed_everything

    seed_everything(cfg.seed, cfg.deterministic)  # the trainer's initial weights
    runtime = build_runtime(cfg, data)  # for its model and optimiser groups only (tested above)
    model = runtime.model
    model.train()
    named = dict(model.named_parameters())
    ids = {id(w): n for n, w in named.items()}
    hyper = {ids[id(w)]: (g["lr"], g["weight_decay"]) for g in runtime.parameter_groups() for w in g["params"]}
    master = {n: w.detach().double().numpy().copy() for n, w in named.items()}
    adam = {n: {"t": 0, "m": np.zeros_like(v), "v": np.zeros_like(v)} for n, v in master.items()}
    y_true = np.array(data.splits["train"].labels, dtype=np.float64)
    p = cfg.method_params
    ulgm = _ReferenceULGM(y_true, {"f": p.post_fusion_dim, "t": p.post_text_dim, "a": p.post_audio_dim,
                                   "v": p.post_video_dim})
    k = p.update_epochs
    history = []
    for epoch in range(1, epochs + 1):
        loader = make_loader(data.splits["train"], batch_size=cfg.batch_size, shuffle=True,
                             seed=cfg.seed * 1000 + epoch)
        grads: dict[str, np.ndarray] = {}
        for step, raw in enumerate(loader, start=1):
            batch = prepare_batch(raw, "cpu", True)
            idx = batch.index.numpy()
            with torch.no_grad():
                for n, w in named.items():
                    w.copy_(torch.from_numpy(master[n]))
            model.zero_grad(set_to_none=True)
            out = model(batch)
            y_m = torch.tensor(ulgm.y["f"][idx], dtype=torch.float32)
            loss = (out.prediction - y_m).abs().mean()
            for s in ("t", "a", "v"):
                y_s = torch.tensor(ulgm.y[s][idx], dtype=torch.float32)
                loss = loss + (torch.tanh((y_s - y_m).abs()) * (out.predictions[s] - y_s).abs()).mean()
            loss.backward()
            for n, w in named.items():
                if w.grad is not None:
                    grads[n] = grads.get(n, 0.0) + w.grad.double().numpy()
            ulgm.after_backward({key: v.detach().double().numpy() for key, v in out.features.items()},
                                idx, epoch)
            if step % k == 0 or step == len(loader):
                norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
                scale = min(1.0, cfg.grad_clip / (norm + 1e-6))  # the shared loop's clipping (never binds here)
                for n, g in grads.items():  # a parameter without a gradient is not stepped (torch's Adam)
                    lr, wd = hyper[n]
                    st = adam[n]
                    g = scale * g + wd * master[n]
                    st["t"] += 1
                    st["m"] = ADAM_BETAS[0] * st["m"] + (1 - ADAM_BETAS[0]) * g
                    st["v"] = ADAM_BETAS[1] * st["v"] + (1 - ADAM_BETAS[1]) * g * g
                    m_hat = st["m"] / (1 - ADAM_BETAS[0] ** st["t"])
                    v_hat = st["v"] / (1 - ADAM_BETAS[1] ** st["t"])
                    master[n] = master[n] - lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
                grads = {}
        history.append(({s: ulgm.y[s].copy() for s in ("t", "a", "v")},
                        {n: v.copy() for n, v in master.items()}))
    return history


def test_training_matches_a_transcription_of_self_mms_update(tiny_data, tmp_path):
    p = Params()
    assert (p.label_clip, p.eps, p.exclude_zero) == (H, ULGM_EPS, True), "Self-MM's constants"
    # no dropout (the reference's forward passes must see the trainer's); distinct decays per group,
    # large enough that 4x one of them (a mean over the accumulated batches) would show
    cfg = tiny_config(**FAST, batch_size=16, max_epochs=3, dropout=0.0, post_fusion_dropout=0.0,
                      post_text_dropout=0.0, post_audio_dropout=0.0, post_video_dropout=0.0,
                      lr_gamma=1.0, grad_clip=1e9, weight_decay=0.04, weight_decay_text=0.01,
                      weight_decay_audio=0.02, weight_decay_video=0.03)
    assert cfg.method_params.update_epochs == 4  # 6 batches per epoch: steps after batches 4 and 6

    def keep(record, save_checkpoint):
        save_checkpoint(tmp_path / f"epoch{record.epoch}")

    train(cfg, tiny_data, on_epoch_end=keep, progress=False)
    reference = _reference_selfmm(cfg, tiny_data, epochs=3)
    for epoch, (labels, weights) in enumerate(reference, start=1):
        state = torch.load(tmp_path / f"epoch{epoch}" / STATE_FILE, weights_only=False)
        bank = state["method_state"]["label_bank"]
        for s in ("t", "a", "v"):
            got = bank["labels"][s].double().numpy()
            # float32 run against float64 reference (seen: ≤ 1.6e-5): δ_s/δ_f amplifies rounding
            # where δ_f is small
            np.testing.assert_allclose(got, labels[s], rtol=0, atol=2e-4, err_msg=f"epoch {epoch}, y_{s}")
        for n, want in weights.items():
            # float32 weights against float64 ones (seen: ≤ 1.4e-6); with the losses averaged over
            # the 4 batches instead of summed (4x the decay) they differ by 2e-2 after epoch 1
            np.testing.assert_allclose(state["model"][n].double().numpy(), want, rtol=0, atol=1e-5,
                                       err_msg=f"epoch {epoch}, {n}")
    moved = {s: float(np.abs(reference[-1][0][s] - np.array(tiny_data.splits["train"].labels)).max())
             for s in "tav"}
    assert all(v > 0.05 for v in moved.values()), moved


def test_bank_features_are_fp32_under_bf16_autocast(tiny_data):
    """The trainer's ``amp`` (bf16 autocast, on CUDA) must not round the bank's features: the heads
    run in fp32, so the bank holds ReLU(W1·x) of the heads' inputs x to fp32 precision. CPU autocast
    stands in for CUDA's here."""
    cfg = tiny_config(**FAST, post_fusion_dropout=0.0, post_text_dropout=0.0, post_audio_dropout=0.0,
                      post_video_dropout=0.0)
    torch.manual_seed(0)
    runtime = build_runtime(cfg, tiny_data)
    inputs = {}
    for k, head in runtime.model.heads.items():
        head.register_forward_pre_hook(lambda mod, args, k=k: inputs.__setitem__(k, args[0].detach()))
    batch = first_batch(tiny_data)
    runtime.on_epoch_start(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        runtime.training_terms(batch, epoch=1)
    assert inputs["a"].dtype == torch.bfloat16, "autocast must have run the encoders in bf16"
    runtime.after_backward(batch)
    for k, head in runtime.model.heads.items():
        w, b = head.layer_1.weight.detach().double(), head.layer_1.bias.detach().double()
        want = torch.relu(inputs[k].double() @ w.T + b)  # the definition, in float64
        got = runtime.bank.features[k][batch.index]
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)
        # what bf16 features would be off by: far outside that tolerance
        assert float((got.to(torch.bfloat16).double() - want).abs().max()) > 1e-3, k
