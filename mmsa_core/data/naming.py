"""The name a data file is known by (MLflow experiment, sweep name, report sections) and the dataset
preset it implies — both decided without loading the file.

MMSA distributes its features as ``MOSI/Processed/unaligned_50.pkl``, ``MOSEI/Processed/aligned_50.pkl``,
``SIMS/...``: the file name alone does not say which dataset it is, and two such files must not share
one experiment. So a *generic* file name — MMSA's release names (``aligned_50``, ``unaligned_39``, …)
and ``data``/``features``/``dataset`` — takes the name of the nearest folder that is not generic itself
in front: ``~/data/MOSEI/unaligned_50.pkl`` → ``MOSEI-unaligned_50``; any other name is kept
(``mosi_clean.pkl`` → ``mosi_clean``).
"""

from __future__ import annotations

import os
import re

CONVERTED_SUFFIX = ".mmsa"  # a converted pickle's directory: ``<stem>.mmsa/`` beside the pickle
# File (and folder) names that say nothing of the dataset: MMSA's release names and the usual words.
GENERIC_NAME = re.compile(r"^((un)?aligned(_\d+)?|data|dataset|features|processed|raw)$", re.IGNORECASE)
# Feature widths (acoustic, visual) of the MMSA releases: how `--preset auto` tells them apart once
# the data is loaded. MOSI: COVAREP 5 / Facet 20; MOSEI: COVAREP 74 / Facet 35.
PRESET_WIDTHS: dict[str, tuple[int, int]] = {"mosi": (5, 20), "mosei": (74, 35)}


def _parts(path: str) -> tuple[str, str]:
    """(stem, nearest folder name that is not generic) of a pickle or converted directory path."""
    norm = os.path.normpath(os.path.expanduser(path))
    base = os.path.basename(norm)
    stem = base.removesuffix(CONVERTED_SUFFIX) if base.endswith(CONVERTED_SUFFIX) else os.path.splitext(base)[0]
    folder, parent = "", os.path.dirname(norm)
    while parent and os.path.basename(parent):
        folder = os.path.basename(parent)
        if not GENERIC_NAME.match(folder):
            break
        parent = os.path.dirname(parent)
    return stem or base, folder


def is_generic(stem: str) -> bool:
    """Whether a file name says nothing of its dataset (``unaligned_50``)."""
    return bool(GENERIC_NAME.match(stem))


def dataset_name_for(path: str) -> str:
    """The dataset name of a data file or converted directory (see the module docstring)."""
    stem, folder = _parts(path)
    if not is_generic(stem) or not folder:
        return stem
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', folder)}-{stem}"


def preset_from_name(path: str) -> str:
    """``mosei`` when the file's name (or, for a generic name, its folder's) says MOSEI, else ``mosi``."""
    return "mosei" if "mosei" in dataset_name_for(path).lower() else "mosi"


def preset_from_widths(audio_dim: int, vision_dim: int) -> str | None:
    """The preset whose MMSA release has these feature widths; None for widths of neither."""
    for preset, widths in PRESET_WIDTHS.items():
        if (audio_dim, vision_dim) == widths:
            return preset
    return None
