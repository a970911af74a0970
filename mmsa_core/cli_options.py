"""The "what to train" flags that several entry points share — ``--data``, ``--preset``,
``--text-encoder``, ``--max-epochs``, ``--seeds`` — with one name, one meaning and one help text each
(`mmsa_core.train`, the sweeps, ``ablations/run.py``, ``compare.py``, ``robustness.py``). Each entry
point keeps its own default *values* where they differ (a sweep's final seeds, a spec's data) and says
them in its help; `add_training_arguments` only fixes the spelling and the semantics. Pure standard
library: ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from mmsa_core.config import PRESET_CHOICES, SYNTHETIC_SOURCES

FLAGS = ("data", "preset", "text_encoder", "max_epochs", "seeds")
PRESET_HELP = ("the method's paper hyper-parameters: mosi | mosei, or auto = MOSEI's when the data's name "
               "(or, for a generic file name, its folder) says MOSEI, else MOSI's")
TEXT_ENCODER_HELP = "'minilm' (packaged, pretrained), 'tiny' (random, for tests) or a local Hugging Face directory"


def add_training_arguments(group: Any, *, defaults: dict[str, str], flags: tuple[str, ...] = FLAGS) -> None:
    """Add the shared flags in `flags` to an argparse parser or group; `defaults` holds each flag's
    default *described* for the help (the values themselves stay None: unset = the entry's own)."""
    helps = {
        "data": f"MMSA pickle / converted directory, or one of {list(SYNTHETIC_SOURCES)}",
        "preset": PRESET_HELP,
        "text_encoder": TEXT_ENCODER_HELP,
        "max_epochs": "epochs per training run (the runs keep their best validation epoch)",
        "seeds": "training seeds, comma-separated",
    }
    for flag in flags:
        extra: dict[str, Any] = {}
        if flag == "preset":
            extra["choices"] = PRESET_CHOICES
        elif flag == "max_epochs":
            extra["type"] = int
        elif flag == "seeds":
            extra["metavar"] = "S1,S2,..."
        default = defaults.get(flag)
        group.add_argument("--" + flag.replace("_", "-"), default=None,
                           help=helps[flag] + (f" (default: {default})" if default else ""), **extra)


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """``1111,1112`` → [1111, 1112]; a clear error naming the flag otherwise."""
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected comma-separated integers, e.g. 1111,1112,1113") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"{flag} {text!r}: expected at least one seed and no seed twice")
    return seeds


def training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--text-encoder`` / ``--max-epochs`` as configuration values (= ``--set text_encoder=…``)."""
    out: dict[str, Any] = {}
    if getattr(args, "text_encoder", None):
        out["text_encoder"] = args.text_encoder
    if getattr(args, "max_epochs", None) is not None:
        out["max_epochs"] = args.max_epochs
    return out
