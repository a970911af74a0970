"""SweepConfig: validation, smoke defaults, configuration hash, base RunConfig."""

from __future__ import annotations

import pytest

from mmsa_core.config import RunConfig
from sweeps import compat
from sweeps.config import DEFAULT_FINAL_SEEDS, HASH_EXCLUDED, GridRun, SweepConfig, data_name, smoke_config
from sweeps.runtime_options import RuntimeOptions, TrialResources, gpu_fraction_problems
from sweeps.spaces import SPACES


def legacy_hash(cfg, space):
    return compat.legacy_config_hash(cfg, space, excluded=HASH_EXCLUDED,
                                     hscl_preset=RunConfig.paper("hscl", cfg.dataset_preset))


def test_defaults_are_the_paper_and_name_is_derived():
    cfg = SweepConfig()
    assert cfg.name == "hscl-synthetic-mosi"
    assert cfg.final_seeds == DEFAULT_FINAL_SEEDS == (1111, 1112, 1113, 1114, 1115)
    base = cfg.base_run_config()
    p = base.params
    assert (p.omega1, p.omega2, p.alpha, p.tau) == (0.01, 0.1, 0.1, 0.5)
    assert base.max_epochs == 20 and base.text_encoder == "minilm"


def test_mosei_preset_is_picked_from_the_data_name():
    assert SweepConfig(data="synthetic-mosei").base_run_config().params.omega2 == 0.05
    assert SweepConfig(data="/d/mosei_unaligned_50.pkl").base_run_config().lr_text == 1e-5
    assert SweepConfig(data="synthetic-mosei", preset="mosi").base_run_config().params.omega2 == 0.1


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError) as err:
        SweepConfig(num_samples=0, sampler="cmaes", final_seeds=(1, 1), asha_reduction_factor=1)
    text = str(err.value)
    for part in ("num_samples=0", "sampler='cmaes'", "duplicates", "asha_reduction_factor=1"):
        assert part in text
    with pytest.raises(ValueError) as err:
        RuntimeOptions(gpus_per_trial=0.3, cpus_per_trial=0, max_failures=-1, tracking_uri="./mlruns")
    for part in ("gpus_per_trial=0.3", "cpus_per_trial=0", "max_failures=-1", "tracking_uri='./mlruns'"):
        assert part in str(err.value)


def test_bad_override_names_the_valid_fields():
    with pytest.raises(ValueError, match="unknown configuration field.*omegaa"):
        SweepConfig(overrides={"omegaa": 1})
    with pytest.raises(ValueError, match="batch_size"):
        SweepConfig(overrides={"batch_size": 0})


def test_overriding_a_searched_field_is_refused():
    with pytest.raises(ValueError, match="searched"):
        SweepConfig(overrides={"hscl.tau": 0.3})
    with pytest.raises(ValueError, match="'tau' is 'hscl.tau'"):  # the pre-namespace name: said so
        SweepConfig(overrides={"tau": 0.3})
    SweepConfig(overrides={"lr_text": 1e-5})  # only searched with search_lr_dropout
    with pytest.raises(ValueError, match="searched"):
        SweepConfig(overrides={"lr_text": 1e-5}, search_lr_dropout=True)


@pytest.mark.parametrize("gpus,ok", [(0, True), (0.25, True), (0.5, True), (1 / 3, True),
                                     (0.3, False), (1, True), (2, True), (1.5, False), (-1, False)])
def test_gpu_fractions_must_divide_a_gpu(gpus, ok):
    assert (gpu_fraction_problems(gpus) == []) is ok


def test_smoke_config_is_small_and_explicit_values_win():
    cfg = smoke_config()
    base = cfg.base_run_config()
    assert cfg.smoke and base.text_encoder == "tiny" and base.synthetic_train == 128
    assert cfg.num_samples * base.max_epochs <= 12 and len(cfg.final_seeds) == 2
    cfg2 = smoke_config(num_samples=5, overrides={"batch_size": 16})
    assert cfg2.num_samples == 5 and cfg2.base_run_config().batch_size == 16
    assert cfg2.base_run_config().synthetic_train == 128


def test_hash_ignores_runtime_fields_but_not_what_is_searched():
    space = SPACES["hscl"].describe()
    a = SweepConfig(name="a")
    h = a.config_hash(space)
    runtime = RuntimeOptions(storage_path="/x", cpus_per_trial=2, gpus_per_trial=0.5, max_concurrent=3,
                             tracking_uri="sqlite:////tmp/m.db", trial_timeout=9, mlflow_wait=1, verbose=0)
    assert SweepConfig(name="b", runtime=runtime).config_hash(space) == h
    assert SweepConfig(name="a", num_samples=7).config_hash(space) != h
    assert SweepConfig(name="a", sampler="gp").config_hash(space) != h
    assert SweepConfig(name="a", overrides={"batch_size": 64}).config_hash(space) != h
    assert a.config_hash(SPACES["hscl"].describe(True)) != h


def test_data_name_matches_dataset_naming():
    assert data_name("synthetic-mosi") == "synthetic-mosi"
    assert data_name("/data/MOSI/mosi_utt.pkl") == "mosi_utt"
    assert data_name("/data/MOSI/converted_dir/") == "converted_dir"


def test_names_and_uris_are_checked():
    with pytest.raises(ValueError, match="name"):
        SweepConfig(name="a/b")
    with pytest.raises(ValueError, match="tracking_uri"):
        RuntimeOptions(tracking_uri="./mlruns")
    for uri in ("sqlite:////tmp/m.db", "http://127.0.0.1:5000", "postgresql://u@db/mlflow", "mysql+pymysql://db/m"):
        RuntimeOptions(tracking_uri=uri)  # what MLflow accepts


def test_grid_value_types():
    with pytest.raises(ValueError):
        TrialResources(cpu=0)
    with pytest.raises(ValueError):
        TrialResources(gpu=0.3)
    run = GridRun(key="final-seed1", config=SweepConfig().base_run_config(), tags={"stage": "final"})
    assert run.name == "" and run.tags["stage"] == "final"


OLD_FFN = {"fusion_ffn_mult": 4}  # the fusion feed-forward width before it became a field


def _with(overrides, **values):
    values.setdefault("rerank_top", 0)  # sweeps of then had no re-rank stage
    smoke = values.pop("smoke", False)
    if smoke:
        return smoke_config(overrides={**smoke_config().overrides, **overrides}, **values)
    return SweepConfig(overrides=overrides, **values)


def test_a_sweep_started_before_method_packages_keeps_its_hash():
    """Hashes recorded on b80cd94 (flat HSCL field names, fusion FFN 4 x d_t): the same sweeps,
    with the old fusion width set explicitly, still match them; under today's default width they
    are other sweeps (another model) and match no old hash."""
    recorded = [(dict(), "ef73f9826c65b8ed"), (dict(smoke=True), "804a1f66af799cd9"),
                (dict(method="l1", data="synthetic-mosei"), "6724382b63ccaa30"),
                (dict(search_lr_dropout=True, overrides={"batch_size": 64}), "6a0640d05464c6a2"),
                (dict(data="synthetic-mosei", overrides={"modalities": "ta"}), "1877b9332ea407ac")]
    for values, old in recorded:
        values = dict(values)
        overrides = values.pop("overrides", {})
        cfg = _with({**overrides, **OLD_FFN}, **values)
        space = SPACES[cfg.method].describe(cfg.search_lr_dropout)
        assert legacy_hash(cfg, space) == old
        assert cfg.config_hash(space) != old  # the new hash covers the namespaced keys
        today = _with(overrides, **values)
        assert legacy_hash(today, space) is None
        assert today.config_hash(space) != cfg.config_hash(space)


def test_a_sweep_started_before_the_fusion_width_field_keeps_its_hash():
    """Hashes of a7536db (namespaced keys, no fusion_ffn_mult field yet, 4 x d_t): matched when the
    old width is set explicitly."""
    recorded = [(dict(), "d387ba547230613e"), (dict(method="mmckd"), "be13b6469e45be5d")]
    for values, old in recorded:
        cfg = _with(dict(OLD_FFN), **values)
        assert cfg.config_hash(SPACES[cfg.method].describe()) == old
        assert _with({}, **values).config_hash(SPACES[cfg.method].describe()) != old


def test_legacy_hash_lets_an_old_sweep_state_resume(tmp_path):
    from sweeps.state import open_sweep_state

    cfg = SweepConfig(name="old", overrides=OLD_FFN, rerank_top=0)
    space = SPACES["hscl"].describe()
    open_sweep_state(str(tmp_path), name="old", config_hash=legacy_hash(cfg, space), tracking_uri="u")
    state = open_sweep_state(str(tmp_path), name="old", config_hash=cfg.config_hash(space), tracking_uri="u",
                             legacy_hashes=(legacy_hash(cfg, space),))
    assert state.config_hash == cfg.config_hash(space)  # re-recorded under the new definition
    with pytest.raises(Exception, match="different configuration"):
        other = SweepConfig(name="old", num_samples=3, overrides=OLD_FFN, rerank_top=0)
        open_sweep_state(str(tmp_path), name="old", config_hash=other.config_hash(space), tracking_uri="u",
                         legacy_hashes=(legacy_hash(other, space),))


def test_smoke_leaves_a_searched_field_to_the_search():
    cfg = smoke_config(method="l1")
    assert "lr_text" not in cfg.overrides and cfg.overrides["batch_size"] == 32


def test_generic_file_names_take_their_folder_and_auto_presets_read_the_widths():
    """MMSA's MOSI/unaligned_50.pkl and MOSEI/unaligned_50.pkl are two datasets (two experiments), and
    --preset auto trains MOSEI's file with MOSEI's preset: by its folder before loading, by its feature
    widths (74/35) after."""
    from mmsa_core.config import dataset_preset_for
    from sweeps.config import auto_preset, data_name

    assert data_name("/d/MOSI/unaligned_50.pkl") == "MOSI-unaligned_50"
    assert data_name("/d/MOSEI/unaligned_50.pkl") == "MOSEI-unaligned_50"
    assert data_name("/d/MOSEI/unaligned_50.mmsa") == "MOSEI-unaligned_50"  # the converted directory
    assert data_name("/d/MOSEI/Processed/aligned_50.pkl") == "MOSEI-aligned_50"  # MMSA's own layout
    assert data_name("/d/MOSEI/my_cut.pkl") == "my_cut"  # a name of its own is kept
    assert data_name("/d/features/mosi_clean.pkl") == "mosi_clean"  # a name that says its dataset
    assert data_name("synthetic-mosei") == "synthetic-mosei"
    assert SweepConfig(data="/d/MOSEI/unaligned_50.pkl").name == "hscl-MOSEI-unaligned_50"
    assert dataset_preset_for("/d/MOSEI/unaligned_50.pkl") == "mosei"
    assert dataset_preset_for("/d/MOSI/unaligned_50.pkl") == "mosi"
    assert dataset_preset_for("/d/mosei_stuff/mosi_clean.pkl") == "mosi"  # the file's own name decides
    generic = SweepConfig(data="/d/x/unaligned_50.pkl")
    assert generic.dataset_preset == "mosi"  # nothing in the name
    assert auto_preset(generic, 74, 35) == "mosei" and auto_preset(generic, 5, 20) == "mosi"
    assert auto_preset(generic, 33, 709) == "mosi"  # widths of neither release: the name decides
    assert auto_preset(generic.replace(preset="mosi"), 74, 35) == "mosi"  # an explicit preset is kept


def test_the_loader_names_a_generic_file_by_its_folder(tmp_path):
    import pickle

    from mmsa_core.data import load_dataset
    from mmsa_core.data.synthetic import make_synthetic
    from sweeps.config import auto_preset, data_name

    folder = tmp_path / "features"
    folder.mkdir()
    path = folder / "unaligned_50.pkl"
    path.write_bytes(pickle.dumps(make_synthetic("mosei", seed=0, sizes=(8, 8, 8))))
    data = load_dataset(str(path), text_encoder="tiny")
    assert data.name == data_name(str(path)) == f"{tmp_path.name}-unaligned_50"  # 'features' is generic too
    assert (data.audio_dim, data.vision_dim) == (74, 35)
    assert auto_preset(SweepConfig(data=str(path)), data.audio_dim, data.vision_dim) == "mosei"
