"""Validate ablation specs without running anything (no Ray, MLflow or torch is imported).

    python ablations/validate.py ablations/specs/*.yaml
    python ablations/validate.py hscl_modalities            # a shipped spec by name

Prints each spec's variants and the configuration deltas they train; exits 1 listing every problem
of every invalid spec. `python ablations/run.py SPEC --validate-only` does the same for one spec
with the command line's changes applied (and resolves a `{sweep: ...}` base when it can).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `ablations` importable from the repo root
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from ablations.spec import AblationSpec, AblationSpecError, load_spec, shipped_specs  # noqa: E402


def describe(spec: AblationSpec) -> str:
    """A few lines: study, base, seeds, and each variant's delta from the reference."""
    ref = spec.config(spec.reference).to_dict()
    if spec.base_sweep is None:
        base = f"preset {spec.preset}"
    elif spec.resolved_base is None:
        base = f"sweep {spec.base_sweep!r} (its best configuration, resolved at run time)"
    else:
        base = f"best configuration of sweep {spec.base_sweep!r}"
    if spec.base_overrides:
        base += " + " + ", ".join(f"{k}={v}" for k, v in spec.base_overrides.items())
    lines = [f"{spec.source}: study {spec.name!r} — {spec.method} on {spec.data}; base: {base}",
             f"  seeds {list(spec.seeds)}; {len(spec.variants)} variants x {len(spec.seeds)} seeds = "
             f"{len(spec.variants) * len(spec.seeds)} runs"]
    for name, cfg in spec.configs().items():
        d = cfg.to_dict()
        delta = {k: d[k] for k in d if d[k] != ref[k] and k != "seed"}
        mark = "reference" if name == spec.reference else (
            ", ".join(f"{k}={v}" for k, v in delta.items()) or "same as the reference")
        lines.append(f"  - {name:<18} {mark}")
    for a, b in spec.duplicate_variants():
        lines.append(f"  warning: variants {a!r} and {b!r} train the same configuration")
    if spec.robustness is not None:
        r = spec.robustness
        lines.append(f"  robustness on {spec.reference!r}: kinds {list(r.kinds)}, modalities "
                     f"{list(r.modalities)}, rates {list(r.rates)} ({len(r.corruptions())} evaluations per run)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python ablations/validate.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="*", metavar="SPEC",
                   help="spec files or shipped spec names (default: every shipped spec)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    args = p.parse_args(argv)
    paths = args.specs or [str(s) for s in shipped_specs()]
    failed = 0
    for path in paths:
        try:
            spec = load_spec(path)
        except (AblationSpecError, FileNotFoundError) as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        if not args.quiet:
            print(describe(spec))
    if failed:
        print(f"{failed} of {len(paths)} spec(s) invalid", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
