"""HSCL and L1 give today's numbers: recorded on main before the one-method-one-module redesign.

Each case trains two epochs on tiny synthetic data from a fixed seed; the recorded values (train loss
per epoch, every train term of the last epoch, validation MAE per epoch, test metrics at the best
epoch) were produced by commit b80cd94 (flat HSCL field names then) and must agree after any
refactoring to float32 round-off: 1e-6 absolute or 1e-5 relative (the same arithmetic in another
order, as `FusionBlock.first_row` computes the fused [CLS] row alone, moves the last bits: 62.917072
against 62.917075; a changed behaviour moves numbers by orders of magnitude more). Those cases set ``fusion_ffn_mult=4``, the fusion feed-forward width of
b80cd94; the ``*_authors_ffn`` cases record the default width (d_t, hscl.md §3) from the commit
that changed it.
"""

from __future__ import annotations

import pytest

from mmsa_core.config import RunConfig
from mmsa_core.trainer import train

BASE = dict(text_encoder="tiny", synthetic_train=96, synthetic_valid=48, synthetic_test=48,
            batch_size=32, max_epochs=2, lr_text=1e-3, num_threads=1, av_layers=1)

RECORDED = {
    'hscl': dict(
        config={'fusion_ffn_mult': 4},
        train_loss=[1.5889962116877239, 1.562840223312378],
        train_terms={'loss': 1.562840223312378, 'task': 1.138984461625417, 'supcr_ta': 3.5228076775868735, 'sim_ta': 9.583289782206217, 'supcr_tv': 3.4710562229156494, 'sim_tv': 9.137958844502768, 'supcr_fusion': 3.3519578774770102},
        valid_mae=[1.3416966944932938, 1.2008706315731008],
        best_test={'mae': 1.3170877393955986, 'corr': 0.5070996633543646, 'acc2_non0': 0.6444444444444445, 'acc7': 0.16666666666666666}),
    'hscl_faithful': dict(
        config={'hscl.faithful': True, 'fusion_ffn_mult': 4},
        train_loss=[1.5751760005950928, 1.542048494021098],
        train_terms={'loss': 1.542048494021098, 'task': 1.128283719221751, 'supcr_ta': 3.4545679092407227, 'sim_ta': 5.465232213338216, 'supcr_tv': 3.4379300276438394, 'sim_tv': 5.264280637105306, 'supcr_fusion': 3.341101884841919},
        valid_mae=[1.2178008174523711, 1.287448574944089],
        best_test={'mae': 1.3324980400502682, 'corr': 0.2380077291869143, 'acc2_non0': 0.6444444444444445, 'acc7': 0.16666666666666666}),
    'hscl_infonce': dict(
        config={'hscl.label_info': 'infonce', 'fusion_ffn_mult': 4},
        train_loss=[1.7569092909495037, 1.6998315652211506],
        train_terms={'loss': 1.6998315652211506, 'task': 1.137736976146698, 'supcr_ta': 4.884724775950114, 'sim_ta': 9.619729042053223, 'supcr_tv': 4.803602854410808, 'sim_tv': 9.23037020365397, 'supcr_fusion': 4.463611920674642},
        valid_mae=[1.3258196199312806, 1.2085944074206054],
        best_test={'mae': 1.324022730269159, 'corr': 0.5314065636998521, 'acc2_non0': 0.6444444444444445, 'acc7': 0.16666666666666666}),
    'hscl_ta_seed5': dict(
        config={'modalities': 'ta', 'seed': 5, 'fusion_ffn_mult': 4},
        train_loss=[1.4839752515157063, 1.4325239658355713],
        train_terms={'loss': 1.4325239658355713, 'task': 1.1318204402923584, 'supcr_ta': 3.5026148160298667, 'sim_ta': 9.116353670756022, 'supcr_fusion': 2.565609931945801},
        valid_mae=[1.3944162897144754, 1.2046748354720573],
        best_test={'mae': 1.3149942395587761, 'corr': 0.5292231696680993, 'acc2_non0': 0.6444444444444445, 'acc7': 0.16666666666666666}),
    'hscl_squared_nofusion': dict(
        config={'hscl.sim_norm': 'squared_l2', 'disabled_losses': ['supcr_fusion'], 'hscl.omega1': 0.3, 'hscl.tau': 0.2, 'fusion_ffn_mult': 4},
        train_loss=[9.485872268676758, 7.796121438344319],
        train_terms={'loss': 7.796121438344319, 'task': 1.136584758758545, 'supcr_ta': 4.387470245361328, 'sim_ta': 74.94830576578777, 'supcr_tv': 4.024448235829671, 'sim_tv': 62.917074839274086},
        valid_mae=[1.3313649616514642, 1.2278649708411347],
        best_test={'mae': 1.3423175430701424, 'corr': 0.500106434132856, 'acc2_non0': 0.6444444444444445, 'acc7': 0.16666666666666666}),
    'l1': dict(
        config={'method': 'l1', 'fusion_ffn_mult': 4},
        train_loss=[1.1542197863260906, 1.140084147453308],
        train_terms={'loss': 1.140084147453308, 'task': 1.140084147453308},
        valid_mae=[1.359546051050226, 1.204290902086844],
        best_test={'mae': 1.3195840505262215, 'corr': 0.49097083991042945, 'acc2_non0': 0.6444444444444445, 'acc7': 0.16666666666666666}),
    'l1_tv': dict(
        config={'method': 'l1', 'modalities': 'tv', 'seed': 7, 'fusion_ffn_mult': 4},
        train_loss=[1.1420745849609375, 1.1423160036404927],
        train_terms={'loss': 1.1423160036404927, 'task': 1.1423160036404927},
        valid_mae=[1.2728995017241687, 1.3032446124125272],
        best_test={'mae': 1.3724818051947902, 'corr': 0.5043426152344188, 'acc2_non0': 0.4222222222222222, 'acc7': 0.16666666666666666}),
    # the authors' fusion feed-forward width (fusion_ffn_mult=1, the default since 2026-12), recorded
    # at the commit that made it the default; the cases above keep the old 4 x d_t width explicitly
    'hscl_authors_ffn': dict(
        config={},
        train_loss=[1.6022073030471802, 1.5375022888183594],
        train_terms={'loss': 1.5375022888183594, 'task': 1.1130893627802532, 'supcr_ta': 3.513142744700114, 'sim_ta': 9.22818692525228, 'supcr_tv': 3.452542304992676, 'sim_tv': 8.69286028544108, 'supcr_fusion': 3.368350108464559},
        valid_mae=[1.392620804719627, 1.2028324881878991],
        best_test={'mae': 1.3201315955569346, 'corr': 0.4194732908439272, 'acc2_non0': 0.6444444444444445, 'acc7': 0.16666666666666666}),
    'hscl_faithful_authors_ffn': dict(
        config={'hscl.faithful': True},
        train_loss=[1.5891007979710896, 1.5427886247634888],
        train_terms={'loss': 1.5427886247634888, 'task': 1.127106527487437, 'supcr_ta': 3.4504929383595786, 'sim_ta': 5.477715174357097, 'supcr_tv': 3.434974114100138, 'sim_tv': 5.276742617289226, 'supcr_fusion': 3.3607296148935952},
        valid_mae=[1.3559145483498771, 1.2255715244682506],
        best_test={'mae': 1.330784944895034, 'corr': 0.4871873173820727, 'acc2_non0': 0.6444444444444445, 'acc7': 0.16666666666666666}),
    'l1_authors_ffn': dict(
        config={'method': 'l1'},
        train_loss=[1.1606993675231934, 1.111564834912618],
        train_terms={'loss': 1.111564834912618, 'task': 1.111564834912618},
        valid_mae=[1.3857387121145923, 1.201165017982324],
        best_test={'mae': 1.3194028893485665, 'corr': 0.4205959351854428, 'acc2_non0': 0.6444444444444445, 'acc7': 0.16666666666666666}),
    'mmckd_authors_ffn': dict(
        config={'method': 'mmckd'},
        train_loss=[3.9344600836435952, 3.8073836167653403],
        train_terms={'loss': 3.8073836167653403, 'task': 1.109146257241567, 'student_task': 2.233175754547119, 'mvsc': 4.650615851084392},
        valid_mae=[1.3018772513605654, 1.2335911645980862],
        best_test={'mae': 1.341385402158873, 'corr': 0.6731992565485391, 'acc2_non0': 0.6444444444444445, 'acc7': 0.16666666666666666}),
}


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_numbers_match_the_recording(case, tiny_data):
    rec = RECORDED[case]
    res = train(RunConfig.from_dict({**BASE, **rec["config"]}), tiny_data, progress=False)
    assert [r.train["loss"] for r in res.history] == pytest.approx(rec["train_loss"], abs=1e-6, rel=1e-5)
    assert res.history[-1].train == pytest.approx(rec["train_terms"], abs=1e-6, rel=1e-5)
    assert [r.valid["mae"] for r in res.history] == pytest.approx(rec["valid_mae"], abs=1e-6, rel=1e-5)
    got = {k: res.best_test[k] for k in rec["best_test"]}
    assert got == pytest.approx(rec["best_test"], abs=1e-6, rel=1e-5)


@pytest.mark.parametrize("method", ["hscl", "mmckd"])
def test_the_fusion_feed_forward_is_the_authors_width_by_default(method, tiny_data):
    """hscl.md §3: fc1 and fc2 are d_t x d_t in the authors' BimodalFusionLayer; 4 x d_t on request."""
    from mmsa_core.models.blocks import FusionBlock
    from mmsa_core.trainer import build_model

    def ffn_shapes(cfg):
        model = build_model(cfg, tiny_data)
        blocks = [m for m in model.modules() if isinstance(m, FusionBlock)]
        assert len(blocks) == 2  # one per non-text stream
        return {tuple(b.ffn[0].weight.shape) for b in blocks}, {tuple(b.ffn[3].weight.shape) for b in blocks}

    base = RunConfig.from_dict({**BASE, "method": method})
    first, second = ffn_shapes(base)
    (rows, d_t), = first
    assert rows == d_t and second == {(d_t, d_t)}
    first4, second4 = ffn_shapes(base.replace(fusion_ffn_mult=4))
    assert first4 == {(4 * d_t, d_t)} and second4 == {(d_t, 4 * d_t)}
