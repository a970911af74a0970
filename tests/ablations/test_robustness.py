"""`python ablations/robustness.py`: the field's missing-modality robustness study for any method.

Fast tests: bad input is refused before anything starts; per-method overrides and a sweep base;
the masked evaluation never touches training or selection. Slow test (Ray): HSCL and MM-CKD over
3 rates and 2 seeds under both protocols end FINISHED in MLflow, and the report's numbers match
numpy on the logged metrics (tests/reports/test_robustness_report.check_report).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ablations import robustness as rb
from tests.ablations.conftest import REPO
from tests.processes import run_in_session

SMALL = ["--smoke", "--set", "max_epochs=1", "--set", "synthetic_train=64", "--set", "synthetic_valid=32",
         "--set", "synthetic_test=32"]


# --- validation before anything starts ---------------------------------------------------------


@pytest.mark.parametrize("argv, needle", [
    (["--methods", "hscl,nope"], "unknown method 'nope'"),
    (["--methods", "hscl", "--rates", "0,1.5"], "rate=1.5 must be a number in [0, 1]"),
    (["--methods", "hscl", "--rates", "0,x"], "'x' is not a number"),
    (["--methods", "hscl", "--rates", "0.3,0.30"], "repeats a rate"),
    (["--methods", "hscl", "--protocol", "both"], "--protocol 'both'"),
    (["--methods", "hscl", "--seeds", "1,1"], "--seeds"),
    (["--methods", "hscl,mmckd", "--base-sweep", "s1"], "METHOD=SWEEP"),
    (["--methods", "hscl", "--set", "nonsense=1"], "nonsense"),
    (["--methods", "hscl,mmckd", "--set", "mmckd.text_encoder=tiny"], "mmckd"),
])
def test_bad_input_is_refused_before_anything_starts(tmp_path, capsys, argv, needle):
    store = tmp_path / "store"
    assert rb.main([*argv, "--storage-path", str(store)]) == 2
    assert needle in capsys.readouterr().err
    assert not store.exists()  # no storage, no MLflow database, no Ray


def test_several_problems_are_reported_at_once():
    with pytest.raises(rb.RobustnessError) as err:
        rb.build_study(methods=["nope"], rates=[2.0], protocol="x")
    text = str(err.value)
    assert "unknown method 'nope'" in text and "rate=2.0" in text and "--protocol 'x'" in text


def test_configs_overrides_and_data():
    study = rb.build_study(methods=["hscl", "mmckd"], rates=[0.5, 0.0, 1.0], seeds=[3, 4],
                           data="synthetic-mosei", overrides={"max_epochs": "3", "hscl.tau": "0.2"})
    assert study.rates == (0.0, 0.5, 1.0) and study.seeds == (3, 4)
    assert study.name == "robustness-evaluate-hscl-mmckd"
    hscl, mmckd = study.config("hscl", 4), study.config("mmckd", 3)
    assert hscl.seed == 4 and mmckd.seed == 3
    assert hscl.max_epochs == mmckd.max_epochs == 3 and hscl.data == mmckd.data == "synthetic-mosei"
    assert hscl.get("hscl.tau") == pytest.approx(0.2)
    from mmsa_core.config import RunConfig

    assert mmckd.method_params == RunConfig.paper("mmckd", "mosi").method_params  # hscl.* not applied


def test_base_sweep_is_resolved_like_an_ablation_base(tmp_path):
    """--base-sweep goes through ablations.runner.resolve_sweep_base (best_config.json of the sweep)."""
    from mlflow import MlflowClient

    from mmsa_core.config import RunConfig
    from sweeps.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("mmsa-synthetic-mosi")
    run = client.create_run(exp, run_name="hscl-s1", tags={"kind": "sweep", "sweep_name": "hscl-s1"})
    best = RunConfig.paper("hscl", "mosi").replace(data="synthetic-mosi").with_params(tau=0.37)
    client.log_text(run.info.run_id, json.dumps({"config": best.to_dict()}), "best_config.json")
    client.set_terminated(run.info.run_id, "FINISHED")
    study = rb.build_study(methods=["hscl", "mmckd"], data="synthetic-mosi", base_sweeps={"hscl": "hscl-s1"},
                           tracker=Tracker(uri), overrides={"max_epochs": "2"})
    assert study.config("hscl", 1).get("hscl.tau") == pytest.approx(0.37)
    assert study.config("hscl", 1).max_epochs == 2  # --set applies on top of the sweep's best
    # one shared dataset for every method: a base that loads other data is refused
    run = client.create_run(exp, run_name="hscl-s2", tags={"kind": "sweep", "sweep_name": "hscl-s2"})
    client.log_text(run.info.run_id, json.dumps({"config": best.replace(max_text_len=20).to_dict()}),
                    "best_config.json")
    with pytest.raises(rb.RobustnessError, match="mmckd: loads other data than hscl .*max_text_len"):
        rb.build_study(methods=["hscl", "mmckd"], data="synthetic-mosi", base_sweeps={"hscl": "hscl-s2"},
                       tracker=Tracker(uri))
    with pytest.raises(Exception, match="base sweep 'missing' not found"):
        rb.build_study(methods=["hscl"], data="synthetic-mosi", base_sweeps={"hscl": "missing"},
                       tracker=Tracker(uri))


def _masked(rates, keys=("k",)):
    request = rb.build_study(methods=["hscl"], rates=list(rates), seeds=[1])
    return rb.masked_evaluation(request, keys, unk_id=100)


def test_metric_names():
    from mmsa_core.record_names import RobustKey, parse_robust_metric, robust_metric

    assert robust_metric("tokens", "tav", 0.3, "mae") == "robust/tokens-tav/r0.30/test/mae"
    assert robust_metric("absent", "av", None, "acc7") == "robust/absent-av/test/acc7"
    assert parse_robust_metric("metrics.robust/tokens-tav/r0.30/test/mae") == RobustKey("tokens", "tav", 0.3, "mae")
    assert parse_robust_metric("robust/absent-av/test/acc7") == RobustKey("absent", "av", None, "acc7")
    assert parse_robust_metric("robust/absent-av/r0.30/test/acc7") is None  # absent streams have no rate
    assert parse_robust_metric("best/test/mae") is None
    hook = _masked((0.0, 0.5))
    assert hook.applies_to("k") and not hook.applies_to("other")
    assert hook.metric_names("mae") == ["robust/tokens-tav/r0.00/test/mae", "robust/tokens-tav/r0.50/test/mae",
                                        "robust/absent-a/test/mae", "robust/absent-v/test/mae",
                                        "robust/absent-av/test/mae"]


# --- the masked evaluation never touches training or selection -------------------------------


def _snapshot(split):
    return {k: np.array(getattr(split, k), copy=True) for k in
            ("text_ids", "text_mask", "audio", "audio_lengths", "vision", "vision_lengths", "labels")}


def test_masked_evaluation_never_touches_training_or_selection(tmp_path):
    from mmsa_core.data import load_dataset
    from mmsa_core.trainer import train
    from tests.core.conftest import tiny_config

    data = load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(96, 48, 48))
    cfg = tiny_config(max_epochs=3, seed=5, av_layers=1)
    before = {s: _snapshot(data.splits[s]) for s in ("train", "valid", "test")}
    objects = {s: data.splits[s] for s in ("train", "valid", "test")}

    with_eval = train(cfg, data, checkpoint_dir=tmp_path / "ckpt", progress=False)
    hook = _masked((0.0, 0.5, 1.0))
    metrics = hook(cfg, data, str(tmp_path / "ckpt"))  # what the grid's evaluation does in the trial
    without = train(cfg, data, progress=False)

    # the data: every split's arrays unchanged (the masked copies are new arrays)
    for s in ("train", "valid", "test"):
        assert data.splits[s] is objects[s]
        for k, v in before[s].items():
            assert np.array_equal(getattr(data.splits[s], k), v), (s, k)
    # training and selection: identical with and without the robustness evaluation
    assert with_eval.best_epoch == without.best_epoch
    assert with_eval.best_valid == without.best_valid
    assert [r.valid for r in with_eval.history] == [r.valid for r in without.history]
    assert [r.train for r in with_eval.history] == [r.train for r in without.history]
    # every masked metric is there; r = 0 is the complete test split at the best validation epoch
    for m in ("mae", "corr", "acc2_non0", "f1_non0", "acc7"):
        for name in hook.metric_names(m):
            assert np.isfinite(metrics[name]), name
        assert metrics[f"robust/tokens-tav/r0.00/test/{m}"] == pytest.approx(with_eval.best_test[m], abs=1e-6)
    # the ablation specs' robustness block, kind "tokens" = the same masking: the same numbers
    from ablations.evaluation import TestTimeEvaluation
    from mmsa_core.data.corruption import Corruption

    spec_path = TestTimeEvaluation(corruptions=(Corruption("tokens", "tav", 0.5), Corruption("tokens", "tav", 1.0)),
                                   run_keys=frozenset())
    got = spec_path.evaluate(cfg, data, str(tmp_path / "ckpt"))
    for m in ("mae", "corr", "acc2_non0"):
        for r in ("0.50", "1.00"):
            assert got[f"robust/tokens-tav/r{r}/test/{m}"] == pytest.approx(metrics[f"robust/tokens-tav/r{r}/test/{m}"],
                                                                           abs=1e-9)
    # and the masking did change the test inputs the model saw at r = 1
    assert metrics["robust/tokens-tav/r1.00/test/mae"] != metrics["robust/tokens-tav/r0.00/test/mae"] or \
        metrics["robust/tokens-tav/r1.00/test/corr"] != metrics["robust/tokens-tav/r0.00/test/corr"]


# --- a real study, both protocols (Ray) --------------------------------------------------------


def _run(args, env):
    import sys

    code, out = run_in_session([sys.executable, "ablations/robustness.py", *args], cwd=REPO, env=env,
                               timeout=900, what="robustness study")
    return code, out


@pytest.mark.slow
def test_study_both_protocols_and_report(ablation_env, tmp_path):
    from mlflow import MlflowClient

    from reports.build import build_report
    from tests.reports.test_robustness_report import check_report

    storage = tmp_path / "runs"
    uri = f"sqlite:///{storage / 'mlflow.db'}"
    common = ["--methods", "hscl,mmckd", "--rates", "0,0.5,1", "--seeds", "1,2", *SMALL,
              "--storage-path", str(storage), "--num-cpus", "2", "--verbose", "0"]
    for protocol in ("evaluate", "retrain"):
        code, out = _run([*common, "--protocol", protocol, "--name", f"rob-{protocol}"], ablation_env)
        assert code == 0, out[-4000:]

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mmsa-synthetic-mosi")
    for protocol, n_children in (("evaluate", 4), ("retrain", 12)):
        runs = client.search_runs([exp.experiment_id], filter_string=f"tags.sweep_name = 'rob-{protocol}'",
                                  max_results=100)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1
        parent = parents[0]
        assert parent.info.status == "FINISHED"
        assert parent.data.tags["kind"] == "robustness" and parent.data.tags["protocol"] == protocol
        kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(kids) == n_children and {k.info.status for k in kids} == {"FINISHED"}
        assert {k.data.tags["stage"] for k in kids} == {"robustness"}
        assert {k.data.tags["method"] for k in kids} == {"hscl", "mmckd"}
        if protocol == "evaluate":
            for k in kids:
                for name in _masked((0.0, 0.5, 1.0)).metric_names("acc2_non0"):
                    assert name in k.data.metrics
        else:
            assert sorted({k.data.tags["rate"] for k in kids}) == ["0.00", "0.50", "1.00"]
        built = build_report(tracking_uri=uri, out_dir=tmp_path / f"report-{protocol}",
                             robustness=[f"rob-{protocol}"], log_artifacts=False)
        check_report(built, uri, f"rob-{protocol}", methods=("hscl", "mmckd"))

    # the method table counts the evaluate study (trained on complete data), never the retrain one
    methods = build_report(tracking_uri=uri, out_dir=tmp_path / "report-methods", methods=True,
                           log_artifacts=False)
    table = next(t for t in methods.report.tables() if t.id == "methods")
    evaluate = next(r for r in client.search_runs([exp.experiment_id], filter_string="tags.kind = 'robustness'")
                    if r.data.tags["protocol"] == "evaluate")
    kids = {(k.data.tags["method"], int(k.data.tags["seed"])): k for k in client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{evaluate.info.run_id}'")}
    assert len(kids) == 4 and [r.label for r in table.rows] == ["hscl", "mmckd"]
    for method in ("hscl", "mmckd"):
        maes = [kids[(method, s)].data.metrics["best/test/mae"] for s in (1, 2)]
        assert table.row(method).cells["mae"].mean == pytest.approx(sum(maes) / 2, rel=1e-9)
        assert table.row(method).n == 2

    # the same command again resumes: nothing left to train (no Ray started)
    code, out = _run([*common, "--protocol", "retrain", "--name", "rob-retrain"], ablation_env)
    assert code == 0 and "0 to train" in out, out[-3000:]
    # another protocol under the same name is refused
    code, out = _run([*common, "--protocol", "evaluate", "--name", "rob-retrain"], ablation_env)
    assert code == 2 and "was started with protocol=retrain; it cannot be resumed with protocol=evaluate" in out, out[-3000:]


# --- the ablation specs' robustness block on the field's masking (kind "tokens") ----------------


def test_corruption_kind_tokens_is_the_fields_masking():
    from mmsa_core.data import load_dataset
    from mmsa_core.data.corruption import Corruption, apply_corruption
    from mmsa_core.data.masking import masked_split

    test = load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(32, 16, 24)).splits["test"]
    for mods, rate in (("tav", 0.3), ("av", 0.7), ("t", 1.0)):
        got = apply_corruption(test, Corruption(kind="tokens", modalities=mods, rate=rate, seed=5))
        want = masked_split(test, rate, modalities=mods)  # MMSA's seeds whatever the spec's seed
        for k in ("text_ids", "text_mask", "audio", "audio_lengths", "vision", "vision_lengths"):
            assert np.array_equal(getattr(got, k), getattr(want, k)), (mods, rate, k)
    assert Corruption(kind="tokens", modalities="va", rate=0.3).key == "tokens-av/r0.30"
    with pytest.raises(ValueError, match="unk_token_id"):
        Corruption(kind="tokens", modalities="a", rate=0.3, unk_token_id=-1)


def test_spec_robustness_block_accepts_tokens(tmp_path):
    from ablations.runner import reference_evaluation
    from ablations.spec import AblationSpecError, load_spec

    p = tmp_path / "study.yaml"
    p.write_text("variants: [full]\nrobustness: {kinds: [tokens, frames], modalities: [tav, av], "
                 "rates: [0.0, 0.5, 1.0]}\n")
    spec = load_spec(p)
    assert spec.robustness.kinds == ("tokens", "frames")
    names = reference_evaluation(spec, ["full-seed1111"]).metric_names()
    assert "robust/tokens-tav/r0.50/test/mae" in names and "robust/frames-av/r1.00/test/mae" in names
    p.write_text("variants: [full]\nrobustness: {kinds: [noise], modalities: [av], rates: [0.5]}\n")
    with pytest.raises(AblationSpecError, match="'tokens' \\(the field's MMSA masking"):
        load_spec(p)
