"""The repository's help texts, docstrings, comments and docs point only to what users have.

Users get the repository, not the developers' machine: no tracked text file outside ``tests/`` may
point to ``shared/spec`` or a spec file of it by name, to ``../shared``, or to a path of a developer
machine (``/work/...``). What a user needs from those notes lives in ``docs/`` (METHODS.md, DATA.md,
METRICS.md, SWEEPS.md). Tests may still read developer data beside the checkout (``conftest.py``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".txt"}
EXCLUDED_DIRS = ("tests/",)  # tests/fixtures included
FORBIDDEN = (
    (re.compile(r"shared/spec"), "the developers' spec folder (shared/spec)"),
    (re.compile(r"\.\./shared"), "a folder beside the checkout (../shared)"),
    (re.compile(r"/work/"), "a path of a developer machine (/work/...)"),
    # the spec notes by file name ("hscl.md §8", "spec robustness.md"); docs/ files are upper case
    (re.compile(r"(?<![\w/.-])(hscl|methods|sweeps|metrics|robustness|data|cluster|style)\.md\b"),
     "a developers' spec note by name"),
)


def tracked_text_files() -> list[str]:
    try:
        # tracked files, and new ones git does not ignore (so a file is checked before its commit)
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc})")
    paths = {p for p in out.stdout.decode().split("\0") if p}
    return sorted(p for p in paths
                  if Path(p).suffix in SUFFIXES and not p.startswith(EXCLUDED_DIRS) and (ROOT / p).is_file())


def offending_lines(files: list[str]) -> list[str]:
    found = []
    for rel in files:
        text = (ROOT / rel).read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            for pattern, what in FORBIDDEN:
                match = pattern.search(line)
                if match:
                    found.append(f"{rel}:{number}: {match.group(0)!r} — {what}: {line.strip()[:120]}")
    return found


def test_the_scan_sees_the_repository():
    files = tracked_text_files()
    assert "README.md" in files and "docs/METHODS.md" in files and "mmsa_core/config.py" in files


def test_the_patterns_catch_what_they_must():
    bad = ["see shared/spec/hscl.md", "--data ../shared/data/x.pkl", "/work/scratch/x", "(hscl.md §8)",
           "spec robustness.md"]
    good = ["docs/METHODS.md, HSCL §8", "the shared/private method", "/shared/sweeps on NFS",
            "README.md", "docs/DATA.md", "homework/"]
    assert all(any(p.search(s) for p, _ in FORBIDDEN) for s in bad)
    assert not any(p.search(s) for s in good for p, _ in FORBIDDEN)


def test_no_text_points_outside_the_repository():
    found = offending_lines(tracked_text_files())
    assert not found, ("these lines point to files users do not have; move what they need into docs/ "
                       "and point there:\n" + "\n".join(found))
