"""Reading MMSA pickles safely, and converting them once to a format that holds no code.

A pickle can run arbitrary code while it loads. The MMSA files only need dicts, lists, tuples,
str, numbers and NumPy arrays, so `read_pickle` uses a `pickle.Unpickler` whose `find_class`
admits an exact (module, name) allow-list (`ALLOWED_GLOBALS`) and refuses anything else with
`UnsafePickleError`, *before* the object is created. A size cap and a clear error for truncated
files come with it.

`convert_to_npz(pkl)` writes ``<stem>.mmsa/`` next to the pickle (or into ``out_dir``): one
``<split>.npz`` per split for the numeric arrays (read back with ``allow_pickle=False``) and one
``<split>.json`` for the string fields, plus ``meta.json``. `load_raw` prefers that directory when
it is present and matches the pickle. Command line::

    python -m mmsa_core.data.convert PATH/aligned_50.pkl [OUT_DIR]
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mmsa_core.data.naming import CONVERTED_SUFFIX, dataset_name_for  # aligned_50.pkl -> aligned_50.mmsa/

__all__ = [
    "ALLOWED_GLOBALS", "DEFAULT_MAX_BYTES", "CONVERTED_SUFFIX", "UnsafePickleError", "DataFileError",
    "read_pickle", "convert_to_npz", "read_converted", "converted_dir_for", "load_raw",
]

DEFAULT_MAX_BYTES = 8 * 1024**3  # 8 GiB; MOSEI unaligned_50 is ~4 GiB
_FORMAT = "mmsa-npz"
# keys the loader reads (mmsa_core.data.validate.REQUIRED_KEYS + optional ones it uses)
_NEEDED_KEYS = ("id", "raw_text", "audio", "vision", "regression_labels", "text_bert",
                "audio_lengths", "vision_lengths")
_FORMAT_VERSION = 1


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (it may try to run code)."""


class DataFileError(ValueError):
    """A data file that cannot be read: truncated, corrupt, too large, or not a data file."""


def _numpy_core(submodule: str) -> Any:
    """``numpy._core.<submodule>`` (NumPy 2) or ``numpy.core.<submodule>`` (NumPy 1)."""
    import importlib

    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # NumPy 1.x
        return importlib.import_module(f"numpy.core.{submodule}")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> the object. Both NumPy spellings map to the installed NumPy's objects."""
    multiarray = _numpy_core("multiarray")
    numeric = _numpy_core("numeric")
    allowed: dict[tuple[str, str], Any] = {}
    for core in ("numpy.core", "numpy._core"):  # files written under NumPy 1.x / 2.x
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # protocol 5
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    try:  # some writers emit the dtype classes themselves (numpy.dtypes.Float32DType, ...)
        import numpy.dtypes as np_dtypes

        for name in dir(np_dtypes):
            obj = getattr(np_dtypes, name)
            if name.endswith("DType") and isinstance(obj, type) and issubclass(obj, np.dtype):
                allowed[("numpy.dtypes", name)] = obj
    except ImportError:  # NumPy < 1.25 has no numpy.dtypes
        pass
    # Plain containers and numbers are pickle opcodes; only these builtins arrive as globals
    # (sets/bytearrays/complex in protocols < 4/5). Python 2 writers spell the module __builtin__.
    import builtins

    for name in ("set", "frozenset", "bytearray", "complex"):
        allowed[("builtins", name)] = getattr(builtins, name)
        allowed[("__builtin__", name)] = getattr(builtins, name)
    import _codecs

    allowed[("_codecs", "encode")] = _codecs.encode  # bytes objects under protocol 0-2
    return allowed


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in `ALLOWED_GLOBALS`; refuses everything else by name."""

    def __init__(self, file: Any, *, path: str) -> None:
        # latin1: Python-2 str payloads (NumPy buffers) decode byte-for-byte; no effect on py3 files
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._path}: refusing to load the global '{module}.{name}'. An MMSA data file "
                "needs only dicts, lists, str, numbers and NumPy arrays/dtypes, so this pickle is "
                "either not an MMSA data file or was crafted to run code when loaded. Nothing from "
                "it was executed."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._path}: refusing a persistent id ({pid!r}) in a data file")


def read_pickle(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Unpickle an MMSA data file with the restricted unpickler.

    Raises `UnsafePickleError` for a global outside the allow-list, `DataFileError` for a missing,
    oversized, truncated or corrupt file; every message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"{p}: no such data file")
    size = p.stat().st_size
    if size > max_bytes:
        raise DataFileError(
            f"{p}: {size / 1024**3:.2f} GiB exceeds the size cap of {max_bytes / 1024**3:.2f} GiB "
            "(pass a larger max_bytes if this file is expected to be that large)"
        )
    with open(p, "rb", buffering=1 << 20) as f:
        try:
            return _RestrictedUnpickler(f, path=str(p)).load()
        except UnsafePickleError:
            raise
        except (EOFError, pickle.UnpicklingError) as exc:
            detail = str(exc) or type(exc).__name__
            raise DataFileError(
                f"{p}: cannot unpickle ({detail}); the file is truncated or corrupt "
                f"({size} bytes on disk) — copy or download it again"
            ) from None
        except (ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
            raise DataFileError(
                f"{p}: not a readable MMSA pickle ({type(exc).__name__}: {exc})"
            ) from None


# --- conversion to a code-free format ------------------------------------------------------------
def converted_dir_for(pkl_path: str | os.PathLike[str]) -> Path:
    """Where the converted form of a pickle lives by default: ``<dir>/<stem>.mmsa/``."""
    p = Path(pkl_path)
    return p.with_name(p.stem + CONVERTED_SUFFIX)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_str_list(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "USO" and all(isinstance(v, (str, bytes, np.str_)) for v in value.ravel())
    return isinstance(value, (list, tuple)) and all(isinstance(v, (str, np.str_)) for v in value)


def convert_to_npz(pkl_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None, *,
                   max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Convert an MMSA pickle once into ``<stem>.mmsa/`` (npz + JSON); return that directory.

    ``out_dir`` defaults to the pickle's folder. An earlier conversion in the same place is
    replaced. Numeric fields (arrays or lists of numbers) go to ``<split>.npz``; string fields
    (ids, transcripts, annotations) to ``<split>.json``. The pickle's size, mtime and SHA-256 are
    recorded so a stale conversion is never preferred over a changed pickle.
    """
    src = Path(pkl_path)
    raw = read_pickle(src, max_bytes=max_bytes)
    if not isinstance(raw, dict):
        raise DataFileError(f"{src}: top level is {type(raw).__name__}, expected a dict of splits")
    target = Path(out_dir) / (src.stem + CONVERTED_SUFFIX) if out_dir is not None else converted_dir_for(src)
    if target.exists() and not (target / "meta.json").is_file():
        raise DataFileError(f"{target}: exists and is not a converted MMSA directory; not replacing it")
    target.parent.mkdir(parents=True, exist_ok=True)
    st = src.stat()
    meta: dict[str, Any] = {
        "format": _FORMAT, "version": _FORMAT_VERSION, "name": src.stem,
        "source": {"path": str(src.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                   "sha256": _sha256(src)},
        "splits": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for split, fields in raw.items():
            if not isinstance(fields, dict):
                raise DataFileError(f"{src}: split {split!r} is {type(fields).__name__}, expected a dict")
            arrays: dict[str, np.ndarray] = {}
            strings: dict[str, list[str]] = {}
            for key, value in fields.items():
                if _is_str_list(value):
                    strings[key] = [v.decode() if isinstance(v, bytes) else str(v) for v in
                                    (value.ravel() if isinstance(value, np.ndarray) else value)]
                    continue
                try:
                    arr = np.asarray(value)
                except ValueError:  # ragged
                    arr = np.asarray(None)
                if arr.dtype.kind not in "biuf":
                    what = f"split {split!r} key {key!r} ({type(value).__name__})"
                    if key in _NEEDED_KEYS:
                        raise DataFileError(f"{src}: {what}: cannot convert (only numbers and strings)")
                    warnings.warn(f"{src}: {what} is neither numbers nor strings; not converted "
                                  "(the loader does not use it)", stacklevel=2)
                    meta.setdefault("skipped", []).append(f"{split}/{key}")
                    continue
                arrays[key] = arr
            np.savez(tmp / f"{split}.npz", **arrays)
            (tmp / f"{split}.json").write_text(json.dumps(strings, ensure_ascii=False))
            meta["splits"][str(split)] = {"arrays": sorted(arrays), "strings": sorted(strings)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_converted(directory: str | os.PathLike[str]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Read a converted directory back into the MMSA dict layout; returns ``(raw, meta)``."""
    d = Path(directory)
    meta_path = d / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise DataFileError(f"{d}: no meta.json; not a converted MMSA directory "
                            "(create one with python -m mmsa_core.data.convert FILE.pkl)") from None
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{meta_path}: corrupt ({exc})") from None
    if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
        raise DataFileError(f"{meta_path}: unknown format {meta.get('format')!r} "
                            f"version {meta.get('version')!r}")
    raw: dict[str, dict[str, Any]] = {}
    for split in meta["splits"]:
        fields: dict[str, Any] = {}
        try:
            with np.load(d / f"{split}.npz", allow_pickle=False) as npz:
                for key in npz.files:
                    fields[key] = npz[key]
            fields.update(json.loads((d / f"{split}.json").read_text()))
        except FileNotFoundError as exc:
            raise DataFileError(f"{d}: split {split!r} file missing ({exc.filename})") from None
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            raise DataFileError(f"{d}: split {split!r} is unreadable ({exc})") from None
        raw[split] = fields
    return raw, meta


def _conversion_matches(conv: Path, pkl: Path) -> bool:
    """True when ``conv`` was made from the current content of ``pkl``."""
    try:
        src = json.loads((conv / "meta.json").read_text())["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    st = pkl.stat()
    if src.get("size") != st.st_size:
        return False
    if src.get("mtime_ns") == st.st_mtime_ns:
        return True
    return src.get("sha256") == _sha256(pkl)  # copied file (new mtime): compare content once


def load_raw(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
             prefer_converted: bool = True) -> tuple[Any, str, Path]:
    """Load an MMSA file in its raw dict layout; returns ``(raw, name, path_read)``.

    ``path`` is a pickle or a converted directory. For a pickle, ``<stem>.mmsa/`` beside it is read
    instead when present and made from this very pickle; a stale one is ignored with a warning.
    ``name`` is `dataset_name_for` the path: the pickle's stem (``mosi_utt``), with its folder in front
    when the stem names no dataset (``MOSEI/unaligned_50.pkl`` → ``MOSEI-unaligned_50``).
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raw, meta = read_converted(p)
        return raw, dataset_name_for(str(p)), p
    conv = converted_dir_for(p)
    if prefer_converted and p.is_file() and (conv / "meta.json").is_file():
        if _conversion_matches(conv, p):
            raw, _ = read_converted(conv)
            return raw, dataset_name_for(str(p)), conv
        warnings.warn(f"{conv} was converted from a different version of {p}; reading the pickle "
                      f"instead (re-run: python -m mmsa_core.data.convert {p})", stacklevel=2)
    return read_pickle(p, max_bytes=max_bytes), dataset_name_for(str(p)), p
