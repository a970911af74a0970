"""Test-time evaluations give today's numbers: recorded at b84beb3, before the two in-trial
evaluators (the ablation spec's corruptions and the robustness study's masking) became one.

One tiny HSCL model is trained for two epochs from a fixed seed; its best-validation weights are then
evaluated under the older corruption kinds (``frames``, ``stream``), the field's masking through an
ablation spec (``tokens``), the robustness study's masking at several rates (mask seeds 111 / 1111 /
11111 for T / A / V) and whole streams absent. The values must agree to float32 round-off.
"""

from __future__ import annotations

import pytest

RECORDED = {
    'robust/absent-a/test/acc2_non0': 0.6444444444444445,
    'robust/absent-a/test/corr': 0.38045867216827994,
    'robust/absent-a/test/mae': 1.3249245121454198,
    'robust/absent-av/test/acc2_non0': 0.6444444444444445,
    'robust/absent-av/test/corr': -0.03396400378312159,
    'robust/absent-av/test/mae': 1.3483536844141781,
    'robust/absent-v/test/acc2_non0': 0.6444444444444445,
    'robust/absent-v/test/corr': 0.09314718505921284,
    'robust/absent-v/test/mae': 1.340817509374271,
    'robust/frames-av/r0.30/test/acc2_non0': 0.6444444444444445,
    'robust/frames-av/r0.30/test/corr': 0.3667883850281549,
    'robust/frames-av/r0.30/test/mae': 1.3230502819642425,
    'robust/frames-t/r0.50/test/acc2_non0': 0.6444444444444445,
    'robust/frames-t/r0.50/test/corr': 0.43548768815085825,
    'robust/frames-t/r0.50/test/mae': 1.3194874475399654,
    'robust/stream-a/r0.50/test/acc2_non0': 0.6444444444444445,
    'robust/stream-a/r0.50/test/corr': 0.43266448262428714,
    'robust/stream-a/r0.50/test/mae': 1.3198016518726945,
    'robust/tokens-tav/r0.00/test/acc2_non0': 0.6444444444444445,
    'robust/tokens-tav/r0.00/test/corr': 0.4194733777882728,
    'robust/tokens-tav/r0.00/test/mae': 1.3201316073536873,
    'robust/tokens-tav/r0.30/test/acc2_non0': 0.6444444444444445,
    'robust/tokens-tav/r0.30/test/corr': 0.3632999796688101,
    'robust/tokens-tav/r0.30/test/mae': 1.3239098989094298,
    'robust/tokens-tav/r0.50/test/acc2_non0': 0.6444444444444445,
    'robust/tokens-tav/r0.50/test/corr': 0.5115679223683373,
    'robust/tokens-tav/r0.50/test/mae': 1.323851343554755,
    'robust/tokens-tav/r1.00/test/acc2_non0': 0.6444444444444445,
    'robust/tokens-tav/r1.00/test/corr': -0.20069523471295755,
    'robust/tokens-tav/r1.00/test/mae': 1.3503142741198342,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from mmsa_core.config import RunConfig
    from mmsa_core.data import load_dataset
    from mmsa_core.trainer import train

    data = load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(96, 48, 48))
    cfg = RunConfig.from_dict(dict(text_encoder="tiny", synthetic_train=96, synthetic_valid=48, synthetic_test=48,
                                   batch_size=32, max_epochs=2, lr_text=1e-3, num_threads=1, av_layers=1),
                              source="test")
    directory = tmp_path_factory.mktemp("trained")
    train(cfg, data, checkpoint_dir=directory, progress=False)
    return cfg, data, str(directory)


def evaluations(cfg, data, directory):
    """The settings of both former evaluators, now entries of the one evaluator."""
    from ablations.evaluation import TestTimeEvaluation
    from mmsa_core.data.corruption import Corruption

    spec_block = [Corruption("frames", "av", 0.3, 0), Corruption("stream", "a", 0.5, 7),
                  Corruption("tokens", "tav", 0.5, 0), Corruption("frames", "t", 0.5, 1)]
    robustness_study = [Corruption("tokens", "tav", r, unk_token_id=100, mask_seeds=(111, 1111, 11111))
                        for r in (0.0, 0.3, 1.0)] + [Corruption("absent", a) for a in ("a", "v", "av")]
    evaluation = TestTimeEvaluation(corruptions=tuple(spec_block + robustness_study), run_keys=frozenset())
    return evaluation.evaluate(cfg, data, directory)


def test_evaluations_match_the_recording(trained):
    got = evaluations(*trained)
    for key, value in RECORDED.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
