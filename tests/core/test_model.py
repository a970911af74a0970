"""HSCL model: shapes for every modality subset, and the faithful switch changing exactly its quirks."""

from __future__ import annotations

import pytest
import torch

from mmsa_core.config import RunConfig
from mmsa_core.methods.hscl.runtime import compute_terms
from mmsa_core.data.batching import make_loader
from mmsa_core.trainer import build_model
from tests.core.conftest import run_config


def _batch(data, n=16):
    return next(iter(make_loader(data.splits["train"], batch_size=n, shuffle=False, seed=0)))


def _forward(model, b):
    return model(b.text_ids, b.text_mask, b.text_type, b.audio, b.audio_mask, b.vision, b.vision_mask)


@pytest.mark.parametrize("modalities", ["t", "ta", "tv", "tav"])
def test_every_modality_subset_runs(tiny_data, modalities):
    cfg = RunConfig(text_encoder="tiny", modalities=modalities)
    torch.manual_seed(0)
    model = build_model(cfg, tiny_data)
    out = _forward(model, _batch(tiny_data))
    assert out.prediction.shape == (16,)
    expected = {"t"} | set(modalities[1:]) | {f"{m}t" for m in modalities[1:]}
    assert set(out.projections) == expected
    assert all(p.shape == (16, cfg.proj_dim) for p in out.projections.values())
    terms = compute_terms(cfg, out, _batch(tiny_data).labels)
    assert set(terms) == set(cfg.method_spec.active_terms(cfg))
    w = cfg.method_spec.loss_weights(cfg)
    loss = sum(w[k] * v for k, v in terms.items())
    loss.backward()
    assert torch.isfinite(loss)
    # modules of absent streams are not even built
    assert set(model.streams) == set(modalities[1:])


def test_heads_that_do_not_divide_width_are_named(tiny_data):
    with pytest.raises(ValueError, match="audio_heads=2 does not divide the acoustic width 5"):
        build_model(RunConfig(text_encoder="tiny", audio_heads=2), tiny_data)


def test_faithful_projection_relu_quirk5(tiny_data):
    b = _batch(tiny_data)
    for faithful in (False, True):
        torch.manual_seed(0)
        model = build_model(run_config(text_encoder="tiny", faithful=faithful), tiny_data).eval()
        out = _forward(model, b)
        negatives = any((p < 0).any() for p in out.projections.values())
        assert negatives is (not faithful)


def test_faithful_random_cls_quirk2(tiny_data):
    b = _batch(tiny_data)
    for faithful in (False, True):
        torch.manual_seed(0)
        model = build_model(run_config(text_encoder="tiny", faithful=faithful), tiny_data).eval()
        with torch.no_grad():
            p1, p2 = _forward(model, b).prediction, _forward(model, b).prediction
        assert torch.equal(p1, p2) is (not faithful)  # evaluation is stochastic only when faithful


def test_faithful_text_self_attention_ignores_padding_quirk3(tiny_data):
    for faithful in (False, True):
        torch.manual_seed(0)
        model = build_model(run_config(text_encoder="tiny", faithful=faithful), tiny_data).eval()
        fusion = model.fusion["a"]
        # fixed E_t with different values in padded positions, the stream held fixed
        e_t = torch.randn(4, 12, model.text_encoder.config.hidden_size)
        pad = torch.zeros(4, 12, dtype=torch.bool)
        pad[:, 8:] = True
        e_t2 = e_t.clone()
        e_t2[:, 8:] += 5.0
        e_m = torch.randn(4, 6, tiny_data.audio_dim)
        m_pad = torch.zeros(4, 6, dtype=torch.bool)
        with torch.no_grad():
            y1 = fusion(e_t, pad, e_m, m_pad)[:, 0]
            y2 = fusion(e_t2, pad, e_m, m_pad)[:, 0]
        assert torch.allclose(y1, y2, atol=1e-6) is (not faithful)


def test_faithful_cross_attention_residual_quirk4(tiny_data):
    for faithful in (False, True):
        torch.manual_seed(0)
        model = build_model(run_config(text_encoder="tiny", faithful=faithful), tiny_data).eval()
        f = model.fusion["a"]
        e_t = torch.randn(3, 7, model.text_encoder.config.hidden_size)
        pad = torch.zeros(3, 7, dtype=torch.bool)
        e_m = torch.randn(3, 5, tiny_data.audio_dim)
        m_pad = torch.zeros(3, 5, dtype=torch.bool)
        with torch.no_grad():
            got = f(e_t, pad, e_m, m_pad)
            h_t = f.norm1(e_t + f.self_attn(e_t, e_t, e_t, key_padding_mask=None if faithful else pad)[0])
            cross = f.cross_attn(h_t, e_m, e_m, key_padding_mask=m_pad)[0]
            f_mt = f.norm2((e_t if faithful else h_t) + cross)
            want = f.norm3(f_mt + f.ffn(f_mt))
        assert torch.allclose(got, want, atol=1e-5)


def test_faithful_loss_quirks_1_and_6(tiny_data):
    from mmsa_core import losses

    b = _batch(tiny_data)
    for faithful in (False, True):
        cfg = run_config(text_encoder="tiny", faithful=faithful, tau=0.1)
        torch.manual_seed(0)
        model = build_model(cfg, tiny_data).eval()
        with torch.no_grad():
            out = _forward(model, b)
            terms = compute_terms(cfg, out, b.labels)
            views = torch.stack([out.projections["t"], out.projections["a"]], 1)
            tau, variant = (0.5, "hscl_code") if faithful else (0.1, "intended")
            want = losses.supcr_loss(views, b.labels, tau, variant=variant)
        assert torch.allclose(terms["supcr_ta"], want)


def test_infonce_replaces_supcr_without_label_information(tiny_data):
    from mmsa_core import losses

    b = _batch(tiny_data)
    cfg = run_config(text_encoder="tiny", label_info="infonce")
    torch.manual_seed(0)
    model = build_model(cfg, tiny_data).eval()
    with torch.no_grad():
        out = _forward(model, b)
        terms = compute_terms(cfg, out, b.labels)
        shuffled = compute_terms(cfg, out, b.labels[torch.randperm(16)])
        fused = torch.stack([out.projections["at"], out.projections["vt"]], 1)
    assert torch.allclose(terms["supcr_fusion"], losses.infonce_loss(fused, cfg.params.tau))
    assert torch.allclose(terms["supcr_fusion"], shuffled["supcr_fusion"])  # labels unused


def test_disabled_terms_are_not_computed():
    cfg = RunConfig(disabled_losses=("sim_ta", "supcr_fusion"))
    assert cfg.active_losses == ("task", "supcr_ta", "supcr_tv", "sim_tv")
    assert run_config(omega2=0.0).active_losses == ("task", "supcr_ta", "sim_ta", "supcr_tv", "sim_tv")
    assert RunConfig(modalities="t").active_losses == ("task",)
    cfg = run_config(omega1=0.2, alpha=0.5, omega2=0.3)
    w = cfg.method_spec.loss_weights(cfg)
    assert w == pytest.approx({"task": 1, "supcr_ta": 0.2, "sim_ta": 0.1, "supcr_tv": 0.2,
                               "sim_tv": 0.1, "supcr_fusion": 0.3})


@pytest.mark.slow
def test_real_minilm_encoder_forward(tiny_data):
    cfg = RunConfig(text_encoder="minilm")
    model = build_model(cfg, tiny_data).eval()
    assert model.text_encoder.config.hidden_size == 384
    with torch.no_grad():
        out = _forward(model, _batch(tiny_data, 4))
    assert out.prediction.shape == (4,) and torch.isfinite(out.prediction).all()


@pytest.mark.parametrize("faithful", [False, True])
@pytest.mark.parametrize("ffn_mult", [1, 4])
@pytest.mark.parametrize("training", [False, True])
def test_fusion_first_row_is_row_0_of_the_whole_block(faithful, ffn_mult, training):
    """`FusionBlock.first_row` (what HSCL and MM-CKD call) = `forward(...)[:, 0]`: values, gradients, and in
    training the same dropout masks and the same random stream afterwards (so a seed's numbers stay)."""
    from mmsa_core.models.blocks import FusionBlock

    torch.manual_seed(0)
    block = FusionBlock(32, 5, 4, 0.2, faithful, ffn_mult=ffn_mult).train(training)
    n, length, frames = 6, 9, 7
    e_t = torch.randn(n, length, 32, requires_grad=True)
    e_m = torch.randn(n, frames, 5, requires_grad=True)
    text_pad = torch.zeros(n, length, dtype=torch.bool)
    text_pad[0, 6:] = text_pad[3, 4:] = True
    stream_pad = torch.zeros(n, frames, dtype=torch.bool)
    stream_pad[1, 3:] = True
    inputs = [e_t, e_m, *block.parameters()]

    torch.manual_seed(5)
    whole = block(e_t, text_pad, e_m, stream_pad)[:, 0]
    after_whole = torch.rand(4)
    grads_whole = torch.autograd.grad(whole.square().sum(), inputs)
    torch.manual_seed(5)
    first = block.first_row(e_t, text_pad, e_m, stream_pad)
    after_first = torch.rand(4)
    grads_first = torch.autograd.grad(first.square().sum(), inputs)

    assert first.shape == (n, 32)
    torch.testing.assert_close(first, whole, rtol=1e-5, atol=1e-6)
    assert torch.equal(after_first, after_whole)
    for g_first, g_whole in zip(grads_first, grads_whole):
        torch.testing.assert_close(g_first, g_whole, rtol=1e-4, atol=1e-5)
    if training:  # dropout really acted: another seed gives another row 0
        torch.manual_seed(6)
        assert not torch.allclose(block.first_row(e_t, text_pad, e_m, stream_pad), first)
