"""Ablation specs: every shipped spec validates; each kind of invalid spec gives its own message."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ablations.spec import (DEFAULT_SEEDS, AblationSpecError, Robustness, load_spec, parse_spec, shipped_specs,
                            spec_on_base, spec_with_changes)
from mmsa_core.config import RunConfig
from mmsa_core.methods.hscl import TERMS as HSCL_LOSS_TERMS
from tests.core.conftest import run_config
from tests.ablations.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
SHIPPED = shipped_specs()


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def error_of(tmp_path: Path, text: str, name: str = "bad.yaml") -> AblationSpecError:
    p = write(tmp_path, text, name)
    with pytest.raises(AblationSpecError) as info:
        load_spec(p)
    msg = str(info.value)
    assert str(p) in msg.splitlines()[0], "the first line names the spec file"
    return info.value


# --- shipped specs ------------------------------------------------------------------------------


def test_the_shipped_specs_are_all_there():
    names = {p.name for p in SHIPPED}
    assert {"hscl_modalities.yaml", "hscl_hierarchy.yaml", "hscl_label_information.yaml",
            "hscl_similarity.yaml", "hscl_combined.yaml", "quickstart.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_spec_validates(path: Path):
    spec = load_spec(path)
    trials = spec.trials()
    assert len(trials) == len(spec.variants) * len(spec.seeds)
    assert sum(t.reference for t in trials) == len(spec.seeds)
    assert not spec.duplicate_variants(), "two variants would train the same configuration"
    assert all(isinstance(c, RunConfig) for c in spec.configs().values())
    header = path.read_text().splitlines()[0]
    assert header.startswith("# Question"), "each spec opens with the question it answers"
    if spec.method == "hscl":
        assert "§8" in path.read_text(), "each HSCL spec names the paper's ablation section (hscl.md §8)"
    else:
        assert "methods.md" in path.read_text() or "Source:" in path.read_text(), \
            "each spec names where its ablation axes come from"
    # round trip: what is logged as ablation_spec.yaml parses back to the same study
    again = parse_spec(spec.to_dict(), source="roundtrip")
    assert again.fingerprint() == spec.fingerprint()


def test_shipped_specs_mirror_the_paper_axes():
    combined = load_spec(next(p for p in SHIPPED if p.stem == "hscl_combined")).configs()
    assert {c.modalities for c in combined.values()} == {"t", "ta", "tv", "tav"}
    assert combined["no_unimodal"].active_losses == ("task", "supcr_fusion")
    assert combined["no_fusion"].active_losses == ("task", "supcr_ta", "sim_ta", "supcr_tv", "sim_tv")
    assert combined["no_hierarchy"].active_losses == ("task",)
    assert combined["no_label_info"].params.label_info == "infonce"
    assert "sim_ta" not in combined["no_similarity"].active_losses
    assert combined["full"].active_losses == HSCL_LOSS_TERMS[:1] + ("supcr_ta", "sim_ta", "supcr_tv",
                                                                      "sim_tv", "supcr_fusion")


def test_defaults_and_order_of_deltas(tmp_path):
    spec = load_spec(write(tmp_path, """
        method: hscl
        base: {hscl.omega2: 0.2, hscl.tau: 0.3, disabled_losses: [sim_tv]}
        variants:
          - full
          - name: hot
            overrides: {hscl.tau: 0.9}
          - name: ta
            modalities: T+A
            disable: [sim_ta]
    """))
    assert spec.name == "study" and spec.seeds == DEFAULT_SEEDS and spec.reference == "full"
    cfgs = spec.configs()
    assert cfgs["full"].params.tau == 0.3 and cfgs["hot"].params.tau == 0.9  # a variant's delta wins over the base
    assert cfgs["ta"].modalities == "ta"
    assert cfgs["ta"].disabled_losses == ("sim_tv", "sim_ta")  # added to the base's switches
    assert [t.seed for t in spec.trials() if t.variant == "hot"] == list(DEFAULT_SEEDS)


def test_command_line_changes_apply_to_the_base_and_are_validated(tmp_path):
    spec = load_spec(write(tmp_path, """
        variants: [{name: full}, {name: small, overrides: {max_epochs: 7}}]
    """))
    changed = spec_with_changes(spec, seeds=[1, 2], base_set={"max_epochs": "3", "text_encoder": "tiny"}, name="x")
    assert changed.name == "x" and changed.seeds == (1, 2)
    assert changed.config("full").max_epochs == 3 and changed.config("small").max_epochs == 7
    assert changed.source == spec.source
    only = spec_with_changes(spec, variants=["small"], source="command line")
    assert only.variant_names() == ("full", "small")  # the reference is always kept
    with pytest.raises(AblationSpecError, match=r"unknown variant\(s\) \['big'\]"):
        spec_with_changes(spec, variants=["big"])
    with pytest.raises(AblationSpecError, match=r"unknown configuration field\(s\) \['max_epoch'\]"):
        spec_with_changes(spec, base_set={"max_epoch": 3})
    with pytest.raises(AblationSpecError, match="command line"):
        spec_with_changes(spec, seeds=[])


# --- each kind of invalid spec --------------------------------------------------------------------


def test_unknown_modality(tmp_path):
    e = error_of(tmp_path, """
        variants: [{name: full}, {name: tx, modalities: tx}]
    """)
    assert "variant 'tx'" in str(e) and "unknown modality 'x'" in str(e)
    assert "['t', 'a', 'v']" in str(e) and "['t', 'ta', 'tv', 'tav']" in str(e)


def test_subset_without_text(tmp_path):
    e = error_of(tmp_path, "variants: [{name: full}, {name: av, modalities: av}]\n")
    assert "variant 'av'" in str(e) and "not a valid subset" in str(e) and "text is always used" in str(e)


def test_unknown_loss_term(tmp_path):
    e = error_of(tmp_path, "variants: [{name: full}, {name: nofuse, disable: [supcr_fuse]}]\n")
    assert "variant 'nofuse'" in str(e) and "unknown loss term 'supcr_fuse'" in str(e)
    assert str(list(HSCL_LOSS_TERMS)) in str(e)


def test_task_term_cannot_be_disabled(tmp_path):
    e = error_of(tmp_path, "variants: [{name: full}, {name: notask, disable: [task]}]\n")
    assert "variant 'notask'" in str(e) and "'task' term cannot be disabled" in str(e)


def test_unknown_field(tmp_path):
    e = error_of(tmp_path, "variants: [{name: full}, {name: w, overrides: {omega_1: 0.5}}]\n")
    assert "variant 'w'" in str(e) and "unknown configuration field(s) ['omega_1']" in str(e)
    assert "'hscl.omega1'" in str(e), "the valid field names are listed"


def test_unknown_base_field_and_bad_value(tmp_path):
    e = error_of(tmp_path, """
        base: {droput: 0.2}
        variants: [{name: full}, {name: w, overrides: {dropout: lots}}]
    """)
    assert "base: unknown configuration field(s) ['droput']" in str(e)
    assert "variant 'w'" in str(e) and "field 'dropout' expects float" in str(e)


def test_unknown_keys_are_named(tmp_path):
    e = error_of(tmp_path, """
        variant: []
        variants: [{name: full, modality: t}]
        robustness: {kinds: [stream], modalities: [a], rates: [0.5], rate: 1}
    """)
    msg = str(e)
    assert "top level: unknown key(s) ['variant']" in msg
    assert "variant 'full': unknown key(s) ['modality']" in msg and "'modalities'" in msg
    assert "robustness: unknown key(s) ['rate']" in msg


@pytest.mark.parametrize("variant, needs", [
    ("{name: tfuse, modalities: t, disable: [supcr_fusion]}", "at least one non-text stream"),
    ("{name: ta_no_tv, modalities: ta, disable: [supcr_tv]}", "the visual stream (v)"),
    ("{name: tv_no_sim, modalities: tv, disable: [sim_ta]}", "the acoustic stream (a)"),
])
def test_invalid_combination_a_term_without_its_stream(tmp_path, variant, needs):
    e = error_of(tmp_path, f"variants: [{{name: full}}, {variant}]\n")
    name = variant.split(",")[0].split(": ")[1]
    assert f"variant '{name}': cannot disable" in str(e) and needs in str(e)
    assert "terms defined there" in str(e)


def test_invalid_combination_replace_with_nothing_to_replace(tmp_path):
    e = error_of(tmp_path, "variants: [{name: full}, {name: t_infonce, modalities: t, replace: {SupCR: InfoNCE}}]\n")
    assert "variant 't_infonce'" in str(e) and "no term it affects is active" in str(e) and "supcr_fusion" in str(e)


def test_invalid_combination_term_of_another_method(tmp_path):
    e = error_of(tmp_path, "method: l1\nvariants: [{name: full}, {name: x, disable: [sim_ta]}]\n")
    assert "variant 'x'" in str(e) and "unknown loss term 'sim_ta'" in str(e) and "valid terms of 'l1': ['task']" in str(e)


def test_unknown_replacement(tmp_path):
    e = error_of(tmp_path, "variants: [{name: full}, {name: r, replace: {supcr: simclr}}]\n")
    assert "variant 'r'" in str(e) and "valid replacements of 'hscl': {supcr: infonce}" in str(e)


def test_fields_with_their_own_key(tmp_path):
    e = error_of(tmp_path, """
        base: {seed: 3, data: x}
        variants: [{name: full}, {name: m, modalities: t, overrides: {modalities: ta}}]
    """)
    assert "'seed' cannot be set here" in str(e) and "'data' cannot be set here" in str(e)
    assert "variant 'm': sets modalities both in overrides and through `modalities:`" in str(e)


def test_data_fields_belong_to_the_base(tmp_path):
    e = error_of(tmp_path, "variants: [{name: full}, {name: big, overrides: {text_encoder: minilm}}]\n")
    assert "variant 'big': overrides ['text_encoder']" in str(e) and "set them in `base:`" in str(e)


def test_missing_reference(tmp_path):
    e = error_of(tmp_path, "variants: [{name: all}, {name: t, modalities: t}]\n")
    assert "reference variant 'full' is not among the variants ['all', 't']" in str(e)
    assert "set `reference: NAME`" in str(e)
    e = error_of(tmp_path, "reference: base\nvariants: [{name: all}]\n")
    assert "reference variant 'base'" in str(e)


def test_duplicate_variant_names(tmp_path):
    e = error_of(tmp_path, "variants: [{name: full}, {name: t, modalities: t}, {name: t, modalities: ta}]\n")
    assert "variant 't': duplicate variant name (items 2 and 3)" in str(e)


def test_duplicate_yaml_keys(tmp_path):
    e = error_of(tmp_path, "variants: [{name: full}]\nseeds: [1]\nseeds: [2]\n")
    assert "duplicate key 'seeds'" in str(e)


@pytest.mark.parametrize("seeds, says", [("[]", "non-empty list"), ("[1, 1]", "duplicate seed(s) [1]"),
                                         ("[1, x]", "['x'] are not non-negative integers")])
def test_bad_seeds(tmp_path, seeds, says):
    assert says in str(error_of(tmp_path, f"seeds: {seeds}\nvariants: [full]\n"))


@pytest.mark.parametrize("rates, says", [
    ("[0.1, 1.5]", "rates [1.5] are not missing rates in [0, 1]"),
    ("[-0.1]", "rates [-0.1] are not missing rates in [0, 1]"),
    ("[]", "rates must be a non-empty list"),
    ("[0.1, 0.1]", "duplicate rates"),
    ("[0.125]", "more than 2 decimals"),
    ("[yes]", "rates [True] are not missing rates"),
])
def test_bad_rates(tmp_path, rates, says):
    e = error_of(tmp_path, f"variants: [full]\nrobustness: {{kinds: [frames], modalities: [av], rates: {rates}}}\n")
    assert says in str(e)


def test_bad_robustness_kind_and_modality(tmp_path):
    e = error_of(tmp_path, """
        variants: [full]
        robustness: {kinds: [noise], modalities: [x, av], rates: [0.5]}
    """)
    assert "unknown corruption kind 'noise'; valid kinds: ['frames', 'stream']" in str(e)
    assert "unknown modality 'x'" in str(e) and "'tav']" in str(e)


def test_robustness_needs_the_stream_on_the_reference(tmp_path):
    e = error_of(tmp_path, """
        variants: [{name: full, modalities: ta}]
        robustness: {kinds: [stream], modalities: [v], rates: [0.5]}
    """)
    assert "cannot corrupt 'v' on the reference variant 'full': its modalities are 'ta'" in str(e)


def test_every_problem_in_one_error(tmp_path):
    e = error_of(tmp_path, """
        seeds: [1, 1]
        variants:
          - {name: full}
          - {name: a, modalities: tx}
          - {name: b, disable: [nope]}
          - {name: c, overrides: {nope: 1}}
          - {name: d, modalities: t, disable: [supcr_fusion]}
        robustness: {kinds: [stream], modalities: [av], rates: [2]}
    """)
    assert len(e.problems) == 6
    assert "(6 problems)" in str(e).splitlines()[0]
    for v in "abcd":
        assert f"variant '{v}'" in str(e)


def test_base_from_a_sweep_is_checked_for_shape(tmp_path):
    spec = load_spec(write(tmp_path, "base: {sweep: hscl-s1, overrides: {max_epochs: 3}}\nvariants: [full]\n"))
    assert spec.base_sweep == "hscl-s1" and spec.config("full").max_epochs == 3
    resolved = spec_on_base(spec, run_config(omega1=0.5, seed=9))
    assert resolved.config("full").params.omega1 == 0.5 and resolved.config("full").max_epochs == 3
    assert resolved.config("full").seed == DEFAULT_SEEDS[0]
    e = error_of(tmp_path, "base: {sweep: 12, extra: 1}\nvariants: [full]\n")
    assert "base (sweep form): unknown key(s) ['extra']" in str(e) and "sweep must be a sweep name" in str(e)


def test_robustness_metric_names_follow_the_contract():
    r = Robustness(kinds=("frames", "stream"), modalities=("av", "a"), rates=(0.3, 0.5), seed=0)
    names = [c.metric_prefix + "mae" for c in r.corruptions()]
    assert len(names) == 8 and "robust/frames-av/r0.30/test/mae" in names
    assert "robust/stream-a/r0.50/test/mae" in names


# --- command line ----------------------------------------------------------------------------------

_NO_HEAVY = """
import runpy, sys
sys.argv = [{script!r}, *{args!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("ray", "mlflow", "torch", "optuna", "transformers") if m in sys.modules)
assert not heavy, heavy
print("exit", code)
"""


@pytest.mark.parametrize("script, args", [
    ("ablations/run.py", ["--help"]),
    ("ablations/validate.py", []),
])
def test_cli_imports_no_heavy_dependency(script, args):
    out = subprocess.run([sys.executable, "-c", _NO_HEAVY.format(script=script, args=args)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "exit 0" in out.stdout


def test_validate_cli_lists_problems(tmp_path):
    bad = write(tmp_path, "variants: [{name: full}, {name: x, modalities: tq}]\n", "bad.yaml")
    out = subprocess.run([sys.executable, "ablations/validate.py", str(bad), "quickstart"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "variant 'x'" in out.stderr and "unknown modality 'q'" in out.stderr
    assert "study 'quickstart'" in out.stdout


def test_run_cli_refuses_an_invalid_spec_before_anything_runs(ablation_env, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("variants: [{name: full}, {name: x, modalities: tq, disable: [supcr_fuse]}]\n")
    storage = tmp_path / "runs"
    out = run_cli([str(spec), "--storage-path", str(storage)], ablation_env, timeout=120)
    assert out.returncode == 2
    assert str(spec) in out.stdout and "variant 'x'" in out.stdout
    assert "unknown modality 'q'" in out.stdout and "unknown loss term 'supcr_fuse'" in out.stdout
    assert not storage.exists(), "nothing may be created for an invalid spec"


# --- every shipped variant runs -------------------------------------------------------------------

_ONE_STEP = {"text_encoder": "tiny", "synthetic_train": 32, "synthetic_valid": 16, "synthetic_test": 16,
             "batch_size": 16, "max_epochs": 1, "av_layers": 1, "num_threads": 1, "lr_text": 1e-3}


def test_every_shipped_variant_trains_one_epoch_on_synthetic_data():
    """Each distinct configuration of the shipped specs trains (2 steps) with a finite loss."""
    import math

    from mmsa_core.trainer import load_run_data, train

    configs = {}
    for path in SHIPPED:
        spec = spec_with_changes(load_spec(path), base_set=_ONE_STEP, seeds=[1111], source="test")
        for name, cfg in spec.configs().items():
            configs.setdefault(cfg.to_json(), (f"{path.stem}:{name}", cfg))
    data = load_run_data(next(iter(configs.values()))[1])
    for label, cfg in configs.values():
        result = train(cfg, data, progress=False)
        record = result.history[-1]
        assert set(record.train) == {"loss", *cfg.active_losses}, label
        assert all(math.isfinite(v) for v in record.train.values()), (label, record.train)
