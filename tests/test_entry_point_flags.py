"""The "what to train" flags mean the same on every entry point: one spelling, one type, the same
choices and the same help text (each entry says its own default); --preset takes auto everywhere."""

from __future__ import annotations

import importlib

import pytest

from mmsa_core.cli_options import FLAGS

ENTRY_POINTS = {  # module -> the shared flags it offers
    "mmsa_core.train": ("data", "preset", "text_encoder", "max_epochs"),
    "sweeps.cli": ("data", "preset", "text_encoder", "max_epochs"),
    "ablations.run": ("data", "seeds", "text_encoder", "max_epochs"),
    "ablations.compare": FLAGS,
    "ablations.robustness": FLAGS,
}


def _actions(module: str) -> dict[str, object]:
    parser = importlib.import_module(module).build_parser()
    return {a.dest: a for a in parser._actions}


def _meaning(action) -> tuple:
    return (tuple(action.option_strings), action.type, tuple(action.choices or ()), action.default,
            action.help.split(" (default:")[0])


@pytest.mark.parametrize("flag", FLAGS)
def test_one_meaning_per_flag(flag):
    meanings = {m: _meaning(_actions(m)[flag]) for m, flags in ENTRY_POINTS.items() if flag in flags}
    assert len(meanings) >= 3 and len(set(meanings.values())) == 1, meanings


def test_preset_auto_everywhere_and_the_flags_parse():
    for module, flags in ENTRY_POINTS.items():
        if "preset" in flags:
            assert "auto" in _actions(module)["preset"].choices, module
    args = importlib.import_module("ablations.compare").build_parser().parse_args(
        ["--max-epochs", "3", "--text-encoder", "tiny", "--seeds", "1,2", "--preset", "auto"])
    from mmsa_core.cli_options import parse_seeds, training_overrides

    assert training_overrides(args) == {"text_encoder": "tiny", "max_epochs": 3}
    assert parse_seeds(args.seeds) == [1, 2]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("1,x")
