"""Convert an MMSA pickle once into a code-free directory (npz + JSON) that loaders prefer.

    python -m mmsa_core.data.convert PATH/aligned_50.pkl [OUT_DIR]

writes ``<OUT_DIR or the pickle's folder>/aligned_50.mmsa/``. The pickle is read with the
restricted unpickler, so converting an untrusted file runs none of its code.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmsa_core.data.convert", description=__doc__.split("\n")[0])
    parser.add_argument("pickle", help="an MMSA .pkl file")
    parser.add_argument("out_dir", nargs="?", default=None,
                        help="folder for <stem>.mmsa/ (default: the pickle's folder)")
    parser.add_argument("--max-gib", type=float, default=8.0, help="size cap in GiB (default: %(default)s)")
    args = parser.parse_args(argv)

    from mmsa_core.data.pickle_io import DataFileError, UnsafePickleError, convert_to_npz
    from mmsa_core.data.validate import DataValidationError, validate_raw
    from mmsa_core.data.pickle_io import read_converted

    try:
        out = convert_to_npz(args.pickle, args.out_dir, max_bytes=int(args.max_gib * 1024**3))
        raw, _ = read_converted(out)
        validate_raw(raw, source=str(out))
    except DataValidationError as exc:
        print(f"converted, but the data has problems:\n{exc}", file=sys.stderr)
        return 2
    except (DataFileError, UnsafePickleError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sizes = {s: len(v.get("regression_labels", ())) for s, v in raw.items() if isinstance(v, dict)}
    print(f"wrote {out} (splits {sizes})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
