"""CLFA: the symmetric InfoNCE against a loop-based definition, the frozen reference space (computed
once, cached, frozen, per sample), the method's facts, and training runs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mmsa_core.config import RunConfig
from mmsa_core.data.batching import make_loader
from mmsa_core.methods import get_method
from mmsa_core.methods.clfa import ALIGN_TERMS, TERMS, Params
from mmsa_core.methods.clfa import reference as ref_mod
from mmsa_core.methods.clfa import runtime as clfa_runtime
from mmsa_core.methods.clfa.losses import symmetric_infonce
from mmsa_core.methods.runtime import build_runtime
from mmsa_core.models.text_encoder import resolve_text_encoder
from mmsa_core.trainer import STATE_FILE, build_optimizer, train
from tests.core.conftest import run_config, tiny_config

METHOD = get_method("clfa")
FAST = dict(method="clfa", av_layers=1, reference_encoder="tiny", width=32)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_data():
    from mmsa_core.data import load_dataset

    return load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(96, 48, 48))


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("clfa_cache")


@pytest.fixture(autouse=True)
def _cache_dir(shared_cache, monkeypatch):
    """Every test's reference cache under one temporary directory (never ~/.cache)."""
    monkeypatch.setenv("MMSA_CACHE_DIR", str(shared_cache))


def cfg_(**values):
    return tiny_config(**{**FAST, **values})


def first_batch(data, n=16, split="train"):
    return next(iter(make_loader(data.splits[split], batch_size=n, shuffle=False, seed=0)))


class ForwardCounter:
    """Wraps the reference module's `build_text_encoder`: counts the encoders built and their forward calls."""

    def __init__(self, monkeypatch):
        self.forwards = 0
        self.encoders = []
        real = ref_mod.build_text_encoder

        def counting(spec):
            encoder = real(spec)
            encoder.register_forward_hook(lambda *_: setattr(self, "forwards", self.forwards + 1))
            self.encoders.append(encoder)
            return encoder

        monkeypatch.setattr(ref_mod, "build_text_encoder", counting)


# ------------------------------------------------------------------------------------------------
# the loss against a loop-based definition (pure Python over float64 entries)


def _infonce_loop(x: torch.Tensor, r: torch.Tensor, tau: float) -> float:
    n = x.shape[0]
    xs = [[float(v) for v in row] for row in x]
    rs = [[float(v) for v in row] for row in r]

    def unit(v):
        norm = math.sqrt(sum(c * c for c in v))
        return [c / norm for c in v]

    xs, rs = [unit(v) for v in xs], [unit(v) for v in rs]
    s = [[sum(a * b for a, b in zip(xs[i], rs[j])) / tau for j in range(n)] for i in range(n)]
    rows = sum(-(s[i][i] - math.log(sum(math.exp(s[i][j]) for j in range(n)))) for i in range(n)) / n
    cols = sum(-(s[j][j] - math.log(sum(math.exp(s[i][j]) for i in range(n)))) for j in range(n)) / n
    return 0.5 * (rows + cols)


@pytest.mark.parametrize("tau", [0.03, 0.1, 0.3, 1.0])
def test_symmetric_infonce_matches_loop_definition(tau):
    g = torch.Generator().manual_seed(3)
    x, r = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    assert float(symmetric_infonce(x, r, tau)) == pytest.approx(_infonce_loop(x, r, tau), rel=1e-10, abs=1e-12)


def test_symmetric_infonce_is_not_symmetric_by_accident():
    # the row and column halves differ in general: a loss over rows only would not match the loop
    g = torch.Generator().manual_seed(4)
    x, r = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    logits = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(r, dim=1).T / 0.1
    rows = torch.nn.functional.cross_entropy(logits, torch.arange(5))
    assert float(rows) != pytest.approx(float(symmetric_infonce(x, r, 0.1)), rel=1e-6)


def test_symmetric_infonce_ties_in_similarity():
    # identical references (duplicated transcripts) and identical students: every logit ties
    x = torch.tensor([[1.0, 2.0, 0.0]] * 4, dtype=torch.float64)
    r = torch.tensor([[0.5, -1.0, 3.0]] * 4, dtype=torch.float64)
    assert float(symmetric_infonce(x, r, 0.1)) == pytest.approx(math.log(4), rel=1e-12)
    assert float(symmetric_infonce(x, r, 0.1)) == pytest.approx(_infonce_loop(x, r, 0.1), rel=1e-12)
    # two of four references tie: each of the tied samples sees its twin as a negative
    r2 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    x2 = torch.tensor([[1.0, 0.1], [0.9, -0.2], [0.1, 1.0], [-1.0, 0.3]], dtype=torch.float64)
    assert float(symmetric_infonce(x2, r2, 0.2)) == pytest.approx(_infonce_loop(x2, r2, 0.2), rel=1e-10)


def test_symmetric_infonce_batch_of_one_is_zero_with_zero_gradient():
    g = torch.Generator().manual_seed(0)  # (unseeded, the loop's log-sum-exp of one term left 5.6e-17 once)
    x = torch.randn(1, 4, generator=g, dtype=torch.float64, requires_grad=True)
    loss = symmetric_infonce(x, torch.randn(1, 4, generator=g, dtype=torch.float64), 0.1)
    assert float(loss.detach()) == 0.0
    assert _infonce_loop(x.detach(), torch.ones(1, 4), 0.1) == pytest.approx(0.0, abs=1e-12)
    loss.backward()
    assert torch.count_nonzero(x.grad) == 0


def test_symmetric_infonce_temperature_scaling_and_normalisation():
    g = torch.Generator().manual_seed(5)
    x, r = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    # rows are normalised: scale per row does not matter
    scale = torch.tensor([[2.0], [0.1], [7.0], [1.0]], dtype=torch.float64)
    assert float(symmetric_infonce(x * scale, r / scale, 0.2)) == pytest.approx(float(symmetric_infonce(x, r, 0.2)))
    # aligned pairs: a lower temperature gives a lower loss; τ enters only as s/τ
    values = [float(symmetric_infonce(x, x + 0.01 * r, t)) for t in (1.0, 0.3, 0.1, 0.03)]
    assert values == sorted(values, reverse=True)
    for t in (0.05, 0.5, 2.0):
        assert float(symmetric_infonce(x, r, t)) == pytest.approx(_infonce_loop(x, r, t), rel=1e-10)


def test_symmetric_infonce_gradient_matches_autograd_of_loop_in_torch():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    r = torch.randn(5, 4, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: symmetric_infonce(a, r, 0.1), (x,))


def test_symmetric_infonce_errors():
    with pytest.raises(ValueError, match="tau must be > 0"):
        symmetric_infonce(torch.ones(2, 3), torch.ones(2, 3), 0.0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        symmetric_infonce(torch.ones(2, 3), torch.ones(3, 3), 0.1)
    with pytest.raises(ValueError, match="empty"):
        symmetric_infonce(torch.ones(0, 3), torch.ones(0, 3), 0.1)


def test_symmetric_infonce_half_precision_is_promoted():
    x, r = torch.randn(4, 8).bfloat16(), torch.randn(4, 8).bfloat16()
    assert symmetric_infonce(x, r, 0.1).dtype == torch.float32


# ------------------------------------------------------------------------------------------------
# the reference space


def test_reference_embeddings_are_mean_pooled_normalised_and_batch_independent():
    spec = resolve_text_encoder("tiny")
    texts = ["a great film", "i did not like the ending at all honestly", "", "ok"]
    emb = ref_mod.encode_texts(texts, spec, max_len=256)
    assert emb.shape == (4, 48) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    # by hand: one text at a time (no padding), masked mean over real tokens, L2 norm
    tok = ref_mod.load_tokenizer(spec)
    encoder = ref_mod.build_reference_encoder(spec)
    for i, t in enumerate(texts):
        enc = tok([t], return_tensors="pt")
        with torch.no_grad():
            h = encoder(**enc).last_hidden_state[0]  # (L, D)
        v = h.mean(0)
        np.testing.assert_allclose(emb[i], (v / v.norm()).numpy(), atol=1e-5)


def test_reference_encoder_is_frozen_and_built_from_a_fixed_rng():
    spec = resolve_text_encoder("tiny")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = ref_mod.build_reference_encoder(spec)
    assert torch.equal(torch.get_rng_state(), before)  # the run's RNG does not move
    b = ref_mod.build_reference_encoder(spec)
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_reference_embeddings_computed_once_per_dataset_and_cached(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_CACHE_DIR", str(tmp_path))
    counter = ForwardCounter(monkeypatch)
    train_texts = tiny_data.splits["train"].raw_text
    path = ref_mod.cache_path(train_texts, resolve_text_encoder("tiny"), 256)
    assert not path.exists()
    cfg = cfg_(max_epochs=2)
    first = build_runtime(cfg, tiny_data)
    batches = math.ceil(len(train_texts) / ref_mod.ENCODE_BATCH)
    assert (len(counter.encoders), counter.forwards) == (1, batches)  # train split only, no-grad batches
    assert path.is_file() and path.parent == tmp_path / "clfa_reference"
    stamp = path.stat().st_mtime_ns
    second = build_runtime(cfg, tiny_data)  # a second trial on the same data: the disk cache is hit
    assert (len(counter.encoders), counter.forwards) == (1, batches)
    assert path.stat().st_mtime_ns == stamp
    assert torch.equal(first.references, second.references)
    train(cfg, tiny_data, progress=False)  # two epochs: never per step
    assert (len(counter.encoders), counter.forwards) == (1, batches)
    # the key follows the texts and the encoder: other texts are computed afresh
    other = ref_mod.reference_embeddings(list(train_texts[:5]), "tiny")
    assert counter.forwards == batches + 1
    np.testing.assert_allclose(other, first.references[:5].numpy(), atol=1e-5)
    assert ref_mod.cache_path(train_texts, resolve_text_encoder("minilm"), 256) != path


def test_cache_hit_and_miss_give_identical_training(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_CACHE_DIR", str(tmp_path))
    cfg = cfg_(max_epochs=1)
    cold = train(cfg, tiny_data, progress=False)
    warm = train(cfg, tiny_data, progress=False)
    assert cold.history[-1].train == warm.history[-1].train and cold.best_test == warm.best_test


def test_unreadable_cache_is_rebuilt(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_CACHE_DIR", str(tmp_path))
    texts = list(tiny_data.splits["train"].raw_text[:8])
    good = ref_mod.reference_embeddings(texts, "tiny")
    path = ref_mod.cache_path(texts, resolve_text_encoder("tiny"), 256)
    path.write_bytes(b"not an npy file")
    np.testing.assert_array_equal(ref_mod.reference_embeddings(texts, "tiny"), good)
    np.testing.assert_array_equal(np.load(path), good)


def test_reference_encoder_never_reaches_the_optimiser(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_CACHE_DIR", str(tmp_path))  # a cold cache: the encoder is built
    counter = ForwardCounter(monkeypatch)
    runtime = build_runtime(cfg_(), tiny_data)
    (encoder,) = counter.encoders
    assert not any(p.requires_grad for p in encoder.parameters())
    optimised = {id(p) for g in build_optimizer(runtime.cfg, runtime).param_groups for p in g["params"]}
    assert not optimised & {id(p) for p in encoder.parameters()}
    assert not any(n.startswith("reference_encoder") for n, _ in runtime.model.named_parameters())
    assert runtime.references.requires_grad is False
    # the frozen map is a buffer, not a parameter; with reference_map=linear it is trained
    assert "reference_map.matrix" in dict(runtime.model.named_buffers())
    assert not [n for n, _ in runtime.model.named_parameters() if n.startswith("reference_map")]
    trainable = build_runtime(cfg_(reference_map="linear"), tiny_data)
    names = [n for n, _ in trainable.model.named_parameters() if n.startswith("reference_map")]
    assert names == ["reference_map.net.weight", "reference_map.net.bias"]
    # the references do not change over training
    before = runtime.references.clone()
    opt = build_optimizer(runtime.cfg, runtime)
    runtime.model.train()
    loss = runtime.total_loss(runtime.training_terms(first_batch(tiny_data), 1))
    loss.backward()
    opt.step()
    assert torch.equal(runtime.references, before)


def test_alignment_is_to_the_same_samples_reference(tiny_data):
    runtime = build_runtime(cfg_(dropout=0.0), tiny_data)
    runtime.model.eval()
    batch = first_batch(tiny_data)
    with torch.no_grad():
        terms = runtime.training_terms(batch, 1)
        out = runtime.model(batch, project=("t", "a", "v"))
        mapped = runtime.model.reference_map(runtime.references[batch.index])
        for m in "tav":  # by hand: P_m(u_m) against P_ref(e_ref) of the same rows
            assert float(terms[f"align_{m}"]) == pytest.approx(
                float(symmetric_infonce(out.projections[m], mapped, runtime.cfg.params.tau)), rel=1e-6)
        # shuffled references (another sample's transcript): the alignment terms change, the task does not
        original = runtime.references
        runtime.references = original[torch.randperm(original.shape[0], generator=torch.Generator().manual_seed(0))]
        shuffled = runtime.training_terms(batch, 1)
        runtime.references = original
    assert float(shuffled["task"]) == float(terms["task"])
    for t in ALIGN_TERMS:
        assert float(shuffled[t]) != pytest.approx(float(terms[t]), rel=1e-4)


def test_orthogonal_map_is_an_isometry_when_widening():
    m = clfa_runtime.orthogonal_matrix(48, 64, seed=1)
    assert m.shape == (48, 64)
    torch.testing.assert_close(m @ m.T, torch.eye(48), atol=1e-5, rtol=0)
    e = torch.nn.functional.normalize(torch.randn(7, 48), dim=1)
    torch.testing.assert_close((e @ m) @ (e @ m).T, e @ e.T, atol=1e-5, rtol=0)
    narrow = clfa_runtime.orthogonal_matrix(48, 32, seed=1)
    torch.testing.assert_close(narrow.T @ narrow, torch.eye(32), atol=1e-5, rtol=0)
    assert torch.equal(m, clfa_runtime.orthogonal_matrix(48, 64, seed=1))
    assert not torch.equal(m, clfa_runtime.orthogonal_matrix(48, 64, seed=2))


def test_pooling_mean_ignores_padding_and_cls_takes_position_zero(tiny_data):
    batch = first_batch(tiny_data, n=8)
    for pooling in ("mean", "cls"):
        runtime = build_runtime(cfg_(pooling=pooling, dropout=0.0), tiny_data)
        model = runtime.model.eval()
        with torch.no_grad():
            enc = model.encoders(batch)
            pooled = model.pool(enc)
            # garbage in every padded audio frame: the pooled vectors do not change
            noisy = dataclasses.replace(batch, audio=torch.where(batch.audio_mask[..., None], batch.audio, 1e3))
            again = model.pool(model.encoders(noisy))
        for m in "tav":
            torch.testing.assert_close(pooled[m], again[m], atol=1e-5, rtol=1e-5)
        if pooling == "cls":
            for m in "tav":
                assert torch.equal(pooled[m], enc.pooled[m])
        else:
            n_real = batch.text_mask.sum(1, keepdim=True)
            torch.testing.assert_close(pooled["t"], (enc.tokens * batch.text_mask[..., None]).sum(1) / n_real)
            e_a, pad = enc.streams["a"]
            valid = (~pad).float()[..., None]
            torch.testing.assert_close(pooled["a"], (e_a * valid).sum(1) / valid.sum(1))


# ------------------------------------------------------------------------------------------------
# the method's facts


def test_defaults_and_weights_are_the_papers():
    p = Params()
    assert (p.tau, p.alpha, p.beta, p.pooling, p.width, p.reference_encoder) == (0.1, 1.0, 1.0, "mean", 512, "minilm")
    cfg = run_config(method="clfa", alpha=0.3, beta=2.0)
    assert METHOD.loss_weights(cfg) == {"task": 2.0, "align_t": 0.3, "align_a": 0.3, "align_v": 0.3}
    assert METHOD.terms == TERMS == ("task", "align_t", "align_a", "align_v")
    assert "none published" in METHOD.published
    assert "reconstruction" in __import__("mmsa_core.methods.clfa", fromlist=["x"]).__doc__


def test_presets_are_the_authors_shipped_run():
    cfg = RunConfig.paper("clfa", "mosi")
    assert (cfg.lr_text, cfg.max_epochs, cfg.seed, cfg.params.pooling, cfg.params.tau) == (1e-5, 30, 2022, "mean", 0.1)
    assert cfg.lr_step_epoch >= cfg.max_epochs  # no StepLR decay: the trainer has no warm-up
    mosei = RunConfig.paper("clfa", "mosei")
    assert mosei.data == "synthetic-mosei" and (mosei.audio_heads, mosei.vision_heads) == (2, 5)
    assert mosei.lr_text == 1e-5 and mosei.lr_other == RunConfig().lr_other


def test_search_space_is_methods_md():
    space = {p.name: p for p in METHOD.search_space().params()}
    assert set(space) == {"clfa.alpha", "clfa.tau", "clfa.width", "clfa.pooling"}
    assert (space["clfa.alpha"].low, space["clfa.alpha"].high, space["clfa.alpha"].log) == (0.1, 5.0, True)
    assert (space["clfa.tau"].low, space["clfa.tau"].high, space["clfa.tau"].log) == (0.03, 0.3, True)
    assert space["clfa.width"].kind == "categorical" and space["clfa.width"].choices == (256, 512)
    assert space["clfa.pooling"].kind == "categorical" and space["clfa.pooling"].choices == ("mean", "cls")
    start = METHOD.search_space().start_point(RunConfig.paper("clfa").to_dict())
    assert start == {"clfa.alpha": 1.0, "clfa.tau": 0.1, "clfa.width": 512, "clfa.pooling": "mean"}
    RunConfig.from_dict({"method": "clfa", **{k: space[k].choices[0] for k in ("clfa.width", "clfa.pooling")}})


@pytest.mark.parametrize("mods, terms", [("t", ("task", "align_t")), ("ta", ("task", "align_t", "align_a")),
                                         ("tv", ("task", "align_t", "align_v")), ("tav", TERMS)])
def test_possible_terms_follow_the_modalities(mods, terms):
    assert METHOD.possible_terms(run_config(method="clfa", modalities=mods)) == terms


@pytest.mark.parametrize("values, field", [
    (dict(tau=0.0), "clfa.tau"), (dict(alpha=-1.0), "clfa.alpha"), (dict(beta=0.0), "clfa.beta"),
    (dict(width=0), "clfa.width"), (dict(mlp_hidden=-1), "clfa.mlp_hidden"),
    (dict(pooling="max"), "clfa.pooling"), (dict(reference_map="random"), "clfa.reference_map"),
    (dict(reference_encoder="/no/such/encoder"), "clfa.reference_encoder"),
    (dict(reference_max_len=1), "clfa.reference_max_len"), (dict(head_input="fused"), "clfa.head_input"),
    (dict(disabled_losses=["align_x"]), "disabled_losses"), (dict(disabled_losses=["task"]), "disabled_losses"),
])
def test_bad_configuration_names_the_field(values, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        run_config(method="clfa", **values)


def test_ablation_spec_validates():
    from ablations.spec import load_spec

    spec = load_spec(ROOT / "ablations" / "specs" / "clfa_terms.yaml")
    assert spec.method == "clfa" and spec.reference == "full" and list(spec.seeds) == [1111, 1112, 1113]
    disabled = {v.name: set(v.disable) for v in spec.variants}
    assert disabled["full"] == set()
    for t in ALIGN_TERMS:
        assert {t} in disabled.values()


# ------------------------------------------------------------------------------------------------
# training


@pytest.mark.parametrize("mods", ["t", "ta", "tv", "tav"])
def test_trains_one_epoch_in_every_modality_subset(tiny_data, mods):
    res = train(cfg_(modalities=mods, max_epochs=1), tiny_data, progress=False)
    expected = {"loss", "task", *(f"align_{m}" for m in mods)}
    assert set(res.history[0].train) == expected
    assert all(math.isfinite(v) for v in res.history[0].train.values())
    assert math.isfinite(res.best_test["mae"])


@pytest.mark.parametrize("term", ALIGN_TERMS)
def test_each_term_can_be_disabled_and_is_then_not_computed(tiny_data, term, monkeypatch):
    cfg = cfg_(disabled_losses=[term])
    runtime = build_runtime(cfg, tiny_data)
    m = term[-1]
    calls = {k: 0 for k in "tav"}
    for k in "tav":
        runtime.model.proj[k].register_forward_hook(lambda *_, k=k: calls.__setitem__(k, calls[k] + 1))
    terms = runtime.training_terms(first_batch(tiny_data), 1)
    assert term not in terms and set(terms) == set(TERMS) - {term}
    assert calls[m] == 0 and all(calls[k] == 1 for k in "tav" if k != m)
    assert METHOD.loss_weights(cfg)[term] == 0.0
    assert runtime.predict(first_batch(tiny_data)).shape == (16,)


def test_without_any_alignment_term_no_reference_is_computed(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_CACHE_DIR", str(tmp_path))
    counter = ForwardCounter(monkeypatch)
    for cfg in (cfg_(disabled_losses=list(ALIGN_TERMS)), cfg_(alpha=0.0)):
        runtime = build_runtime(cfg, tiny_data)
        assert runtime.references is None and counter.forwards == 0
        assert set(runtime.training_terms(first_batch(tiny_data), 1)) == {"task"}
    assert not (tmp_path / "clfa_reference").exists()


def test_head_input_projected_and_trainable_reference_map_train(tiny_data):
    for values in (dict(head_input="projected", disabled_losses=["align_a"]), dict(reference_map="mlp")):
        res = train(cfg_(max_epochs=1, **values), tiny_data, progress=False)
        assert math.isfinite(res.history[0].train["loss"])


@pytest.mark.slow
def test_real_minilm_reference_is_the_sentence_transformers_embedding(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MMSA_CACHE_DIR", str(tmp_path))
    texts = ["I love this movie", "This film is great", "The stock market fell sharply today", ""]
    emb = ref_mod.reference_embeddings(texts, "minilm")
    assert emb.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.5 > sim[0, 2]  # a pretrained space: paraphrases close, unrelated far
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:  # pragma: no cover
        pass
    else:
        st = SentenceTransformer(str(ref_mod.resolve_text_encoder("minilm").model_dir), device="cpu",
                                 local_files_only=True)
        np.testing.assert_allclose(emb, st.encode(texts, convert_to_numpy=True), atol=1e-5)
    # the default configuration trains one epoch with the MiniLM reference
    res = train(tiny_config(method="clfa", av_layers=1, max_epochs=1), tiny_data, progress=False)
    assert set(res.history[0].train) == {"loss", *TERMS}
