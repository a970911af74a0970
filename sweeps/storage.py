"""A storage location: a local folder, or a URI that a pyarrow filesystem opens (``s3://``, ``gs://``, ...).

Why a module of its own: sweeps and studies keep their own files (``sweep.json``, ``best_config.json``,
grid specs, ...) beside Ray Tune's state and checkpoints, and both must land at the same place. Every
read, write, listing and deletion under a storage path goes through here, so a URI is never taken for
a relative local folder (``./s3:/bucket/...``). Local paths keep the exact behaviour they always had
(temporary file, fsync, ``os.replace``; byte-identical files) and never import pyarrow.

A URI is opened with ``pyarrow.fs.FileSystem.from_uri``; a query string is pyarrow's options
(``?endpoint_override=host:port``). Credentials and endpoints come from the environment as each
cloud SDK reads them (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``GOOGLE_APPLICATION_CREDENTIALS``,
...), never from the URI: a URI is recorded in tags and state files. On ``s3://`` small files go up
as one PUT (pyarrow's ``allow_delayed_open``): an object appears whole or not at all, and that takes
one request instead of three. Standard library at import.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import urllib.parse
import uuid
from typing import Any, Iterator

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# pyarrow options that would put a secret into a URI the project records
SECRET_OPTIONS = ("access_key", "secret_key", "session_token")
# what a Ray worker needs to reach an object store (forwarded to every worker, never recorded)
ENV_PREFIXES = ("AWS_", "GOOGLE_", "GCS_", "AZURE_", "ARROW_S3_")


def is_uri(path: str) -> bool:
    """Whether `path` names a remote filesystem (``scheme://...``) rather than a local folder."""
    return bool(_SCHEME.match(path or ""))


def resolve(path: str) -> str:
    """A local path made absolute (``~`` expanded); a URI without its trailing slash."""
    if is_uri(path):
        parts = urllib.parse.urlsplit(path)
        return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/")))
    return os.path.abspath(os.path.expanduser(path))


def join(base: str, *names: str) -> str:
    """`names` below `base` (a URI keeps its query string at the end)."""
    if not is_uri(base):
        return os.path.join(base, *names)
    parts = urllib.parse.urlsplit(base)
    path = "/".join([parts.path.rstrip("/"), *(n.strip("/") for n in names)])
    return urllib.parse.urlunsplit(parts._replace(path=path))


def dirname(location: str) -> str:
    if not is_uri(location):
        return os.path.dirname(location)
    parts = urllib.parse.urlsplit(location)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/").rsplit("/", 1)[0]))


def basename(location: str) -> str:
    return (urllib.parse.urlsplit(location).path if is_uri(location) else location).rstrip("/").rsplit("/", 1)[-1]


def relpath(location: str, base: str) -> str:
    """`location` relative to `base` (``a/b``), for a local path or a URI below `base`."""
    if not is_uri(location):
        return os.path.relpath(location, base)
    inner, outer = urllib.parse.urlsplit(location).path, urllib.parse.urlsplit(base).path.rstrip("/")
    return inner[len(outer):].lstrip("/")


def uri_problems(location: str) -> list[str]:
    """Why `location` cannot be a storage URI (a secret in its query string), else []."""
    if not is_uri(location):
        return []
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    secret = [k for k in query if k in SECRET_OPTIONS]
    if secret:
        return [f"storage_path: {', '.join(secret)} in the URI would be recorded; pass credentials through "
                "the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, ...)"]
    return []


def storage_env() -> dict[str, str]:
    """The environment variables an object store's client reads (endpoint, credentials, region), as
    set here: forwarded to Ray workers so that they reach the same store; never logged or recorded."""
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}


# --- the filesystem behind a URI -------------------------------------------------------------------
_FILESYSTEMS: dict[str, Any] = {}


def filesystem(location: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) of a location; one filesystem per bucket and options."""
    import pyarrow.fs

    if not is_uri(location):
        return pyarrow.fs.LocalFileSystem(), resolve(location)
    parts = urllib.parse.urlsplit(location)
    query = urllib.parse.parse_qs(parts.query)
    if parts.scheme == "s3" and "allow_delayed_open" not in query:
        query["allow_delayed_open"] = ["true"]
    root = urllib.parse.urlunsplit(parts._replace(path="/", query=urllib.parse.urlencode(query, doseq=True)))
    if root not in _FILESYSTEMS:
        _FILESYSTEMS[root], _ = pyarrow.fs.FileSystem.from_uri(root)
    fs = _FILESYSTEMS[root]
    path = (parts.netloc + parts.path).rstrip("/")
    return fs, path


def tune_storage(location: str) -> dict[str, Any]:
    """Ray Tune's ``storage_path`` / ``storage_filesystem`` keywords for a storage location."""
    if not is_uri(location):
        return {"storage_path": resolve(location)}
    fs, path = filesystem(location)
    return {"storage_path": path, "storage_filesystem": fs}


# --- files -----------------------------------------------------------------------------------------
def exists(location: str) -> bool:
    if not is_uri(location):
        return os.path.exists(location)
    import pyarrow.fs

    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def read_bytes(location: str) -> bytes:
    if not is_uri(location):
        with open(location, "rb") as f:
            return f.read()
    fs, path = filesystem(location)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        if not exists(location):
            raise FileNotFoundError(f"{location} does not exist") from None
        raise OSError(f"{location}: {exc}") from None


def read_text(location: str) -> str:
    if not is_uri(location):
        with open(location) as f:
            return f.read()
    return read_bytes(location).decode()


def write(location: str, data: str | bytes) -> None:
    """Write a whole file: locally through a temporary file and ``os.replace`` (fsynced), on an object
    store as one object (visible whole or not at all): a reader never sees half a file."""
    if not is_uri(location):
        tmp = f"{location}.tmp-{os.getpid()}"
        with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, location)
        return
    fs, path = filesystem(location)
    with fs.open_output_stream(path) as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def delete(location: str) -> None:
    """Remove a file or a folder (and what it holds); nothing when it is not there."""
    if not is_uri(location):
        if os.path.isdir(location):
            shutil.rmtree(location, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(location)
        return
    import pyarrow.fs

    fs, path = filesystem(location)
    kind = fs.get_file_info(path).type
    if kind == pyarrow.fs.FileType.Directory:
        fs.delete_dir(path)
    elif kind == pyarrow.fs.FileType.File:
        fs.delete_file(path)


def list_files(location: str, *, recursive: bool = False) -> list[str]:
    """Every file (not folder) below `location`, as locations; [] when it does not exist."""
    if not is_uri(location):
        if not os.path.isdir(location):
            return []
        if not recursive:
            return sorted(e.path for e in os.scandir(location) if e.is_file())
        return sorted(os.path.join(d, f) for d, _, files in os.walk(location) for f in files)
    import pyarrow.fs

    fs, path = filesystem(location)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=recursive, allow_not_found=True))
    return sorted(join(location, i.path[len(path):].lstrip("/")) for i in infos
                  if i.type == pyarrow.fs.FileType.File)


def ensure_dir(location: str) -> None:
    """Create `location` and prove that it takes a file (OSError naming the problem otherwise): on an
    object store this is where a missing bucket or refused credentials show, before any trial."""
    if not is_uri(location):
        os.makedirs(location, exist_ok=True)
    probe = join(location, f".write-test-{uuid.uuid4().hex[:6]}")
    write(probe, "ok")
    delete(probe)


@contextlib.contextmanager
def local_copy(location: str) -> Iterator[str]:
    """A local folder with the contents of folder `location` (itself when it is local)."""
    if not is_uri(location):
        yield location
        return
    import pyarrow.fs

    fs, path = filesystem(location)
    with tempfile.TemporaryDirectory(prefix="mmsa-storage-") as d:
        pyarrow.fs.copy_files(path, d, source_filesystem=fs, destination_filesystem=pyarrow.fs.LocalFileSystem())
        yield d
