"""One test per registered method: the registry's promises hold for every package.

For each method: its defaults lie inside its search space, a shipped ablation spec over it
validates, it trains one epoch on synthetic data, and each of its loss terms can be switched off by
name (and is then not computed). New method packages are covered without touching this file.
"""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from mmsa_core.config import DATASET_PRESETS, RunConfig
from mmsa_core.methods import get_method, method_names
from tests.core.conftest import tiny_config

METHODS = method_names()
TINY = dict(av_layers=1, batch_size=16, max_epochs=1)


def _shipped_specs(method: str):
    from ablations.spec import shipped_specs

    return [p for p in shipped_specs() if (yaml.safe_load(p.read_text()) or {}).get("method", "hscl") == method]


def test_registry_lists_the_builtin_methods_and_refuses_unknown_ones():
    assert {"hscl", "l1"} <= set(METHODS)
    with pytest.raises(ValueError, match="registered methods"):
        get_method("no_such_method")
    with pytest.raises(ValueError, match=r"unknown method 'nope'.*registered methods"):
        RunConfig.from_dict({"method": "nope"})


@pytest.mark.parametrize("method", METHODS)
def test_facts_are_consistent(method):
    m = get_method(method)
    assert m.name == method and m.terms[0] == "task" and len(set(m.terms)) == len(m.terms)
    assert m.description and m.published
    shared = set(RunConfig.field_names())
    assert not shared & set(m.field_names()), "a method field may not shadow a shared field"
    for p in m.space:
        assert p.name.startswith(f"{method}."), f"{p.name}: a method's own keys are namespaced"
    assert set(m.term_needs) <= set(m.terms)
    for r in m.replacements:
        assert set(r.changes) <= set(m.field_names()) and set(r.affects) <= set(m.terms)


@pytest.mark.parametrize("dataset", DATASET_PRESETS)
@pytest.mark.parametrize("method", METHODS)
def test_defaults_lie_inside_the_search_space(method, dataset):
    cfg = RunConfig.paper(method, dataset)
    values = cfg.to_dict()
    space = cfg.method_spec.search_space()
    for p in space.params(True):
        if not p.active(values):
            continue
        if p.kind == "categorical":
            assert values[p.name] in p.choices, p.name
        else:
            assert p.low <= values[p.name] <= p.high, f"{p.name}={values[p.name]} outside [{p.low}, {p.high}]"
    start = space.start_point(cfg.to_dict(), True)
    assert RunConfig.from_dict(start, base=cfg) == cfg, "the start point is the paper's configuration"


@pytest.mark.parametrize("method", METHODS)
def test_a_shipped_ablation_spec_validates(method):
    from ablations.spec import load_spec

    specs = _shipped_specs(method)
    assert specs, f"no ablation spec for {method!r} in ablations/specs/"
    for path in specs:
        spec = load_spec(path)
        assert spec.method == method and len(spec.trials()) >= 2


@pytest.mark.parametrize("method", METHODS)
def test_trains_one_epoch_on_synthetic_data(method, tiny_data):
    from mmsa_core.trainer import train

    res = train(tiny_config(method=method, **TINY), tiny_data, progress=False)
    assert res.epochs_run == 1 and res.best_epoch == 1
    assert set(res.history[0].train) == {"loss", *res.config.active_losses}
    assert all(v == v for v in res.best_test.values())  # no NaN metric


@pytest.mark.parametrize("method", METHODS)
def test_each_term_can_be_disabled_by_name(method, tiny_data):
    from mmsa_core.data.batching import make_loader
    from mmsa_core.methods.runtime import build_runtime
    from mmsa_core.trainer import prepare_batch

    cfg = tiny_config(method=method, **TINY)
    batch = next(iter(make_loader(tiny_data.splits["train"], batch_size=16, shuffle=False)))
    optional = [t for t in cfg.method_spec.possible_terms(cfg) if t != "task"]
    for term in optional:
        off = dataclasses.replace(cfg, disabled_losses=(term,))
        assert term not in off.active_losses
        runtime = build_runtime(off, tiny_data)
        terms = runtime.training_terms(prepare_batch(batch, "cpu", runtime.trim_padding), epoch=1)
        assert term not in terms and "task" in terms
    with pytest.raises(ValueError, match="may not contain 'task'"):
        dataclasses.replace(cfg, disabled_losses=("task",))
    with pytest.raises(ValueError, match="unknown term"):
        dataclasses.replace(cfg, disabled_losses=("no_such_term",))


@pytest.mark.parametrize("method", METHODS)
def test_overfits_one_batch(method, tiny_data):
    """All terms on, no dropout: 80 optimiser steps on one batch bring its task L1 below a quarter of
    its start (a method whose gradients do not reach its head, or whose terms fight the task, fails)."""
    import torch

    from mmsa_core.data.batching import make_loader
    from mmsa_core.methods.runtime import build_runtime
    from mmsa_core.trainer import build_optimizer, prepare_batch, seed_everything

    cfg = tiny_config(method=method, **TINY, dropout=0.0, lr_text=1e-3, lr_other=3e-3, weight_decay=0.0)
    seed_everything(0, True)
    runtime = build_runtime(cfg, tiny_data, "cpu")
    batch = prepare_batch(next(iter(make_loader(tiny_data.splits["train"], batch_size=16, shuffle=False, seed=0))),
                          torch.device("cpu"), runtime.trim_padding)
    optimizer = build_optimizer(cfg, runtime)
    runtime.model.train()
    task = []
    for step in range(80):
        runtime.on_epoch_start(1)
        terms = runtime.training_terms(batch, 1)
        optimizer.zero_grad()
        runtime.total_loss(terms).backward()
        runtime.after_backward(batch)
        optimizer.step()
        task.append(float(terms["task"].detach()))
    assert set(terms) == set(cfg.active_losses)
    assert min(task[-10:]) < 0.25 * task[0], (task[0], task[-10:])


@pytest.mark.parametrize("method", METHODS)
def test_resume_from_a_checkpoint_is_bit_exact(method, tiny_data, tmp_path):
    """Two epochs in one go and one epoch + a resume from its checkpoint give the same numbers —
    whatever state the method keeps beyond its weights (label banks, mask generators) included."""
    from mmsa_core.trainer import train

    cfg = tiny_config(method=method, **{**TINY, "max_epochs": 2})
    full = train(cfg, tiny_data, progress=False)
    part = train(cfg.replace(max_epochs=1), tiny_data, checkpoint_dir=tmp_path, progress=False)
    assert part.epochs_run == 1
    resumed = train(cfg, tiny_data, checkpoint_dir=tmp_path, progress=False)
    assert [r.epoch for r in resumed.history] == [1, 2]
    assert resumed.history[-1].train == full.history[-1].train
    assert resumed.history[-1].valid == full.history[-1].valid
    assert resumed.best_test == full.best_test
