"""Fixtures for the core tests: a small synthetic MOSI-shaped dataset read by the tiny encoder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_data():
    from mmsa_core.data import load_dataset

    return load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(96, 48, 48))


def run_config(**values):
    """A RunConfig from keywords: shared fields by name, the method's own fields by bare name
    (``run_config(method="hscl", tau=0.1)`` sets ``hscl.tau``)."""
    from mmsa_core.config import RunConfig
    from mmsa_core.methods import get_method

    method = values.get("method", "hscl")
    own = get_method(method).field_names()
    return RunConfig.from_dict({(f"{method}.{k}" if k in own else k): v for k, v in values.items()},
                               source="test")


def tiny_config(**overrides):
    base = dict(text_encoder="tiny", synthetic_train=96, synthetic_valid=48, synthetic_test=48,
                batch_size=32, max_epochs=2, lr_text=1e-3, num_threads=1)
    base.update(overrides)
    return run_config(**base)
