"""Pre-flight checks of the MLflow tracking store, run by the entry points before Ray starts.

Why a module of its own: a tracking server that is down makes MLflow's client retry for minutes
(its own retry budget, about 4 min) and then die with a raw ``MlflowException``; a wrong password
surfaces only after Ray has started. `check_tracking` answers in seconds with one message that
names the URI (credentials redacted) and says what to do. Pure standard library: no mlflow, no
Ray, so a failed check costs nothing.

- ``http(s)://``: one GET of a cheap authenticated REST endpoint with a short timeout; refused /
  timed out -> "not reachable" with how to start a server; 401 -> "authentication failed for
  <uri>"; 403 -> "permission denied"; any other non-2xx -> the status.
  Credentials: ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (basic auth) or
  ``MLFLOW_TRACKING_TOKEN`` (bearer), as MLflow's own client reads them, or ``user:pass@`` in the
  URI (works, but then the URI is a secret: prefer the environment).
- ``sqlite:///<path>``: the database's folder exists or can be created, and it (and an existing
  database file) is writable.
- anything else (``databricks``): not checked.

`redact_uri` is the one place a tracking URI is made safe to record or print.
"""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_TIMEOUT_S = 5.0
_PROBE_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"


class PreflightError(RuntimeError):
    """The tracking store cannot be used; the message names the (redacted) URI and the fix."""


def redact_uri(uri: str) -> str:
    """`uri` with any password in its user-info replaced by ``***`` (``http://u:***@host``)."""
    if not uri or "@" not in uri:
        return uri
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    userinfo = f"{user}:***" if parts.password is not None else "***"
    return urllib.parse.urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query,
                                    parts.fragment))


def check_tracking(uri: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Raise `PreflightError` unless the MLflow store at `uri` answers and accepts us."""
    if uri.startswith("sqlite:///"):
        _check_sqlite(uri)
    elif uri.startswith(("http://", "https://")):
        _check_http(uri, timeout)


def _check_sqlite(uri: str) -> None:
    path = uri[len("sqlite:///"):]
    folder = os.path.dirname(os.path.abspath(path)) or "."
    probe = folder
    while not os.path.exists(probe):  # the nearest existing ancestor must let us create the folder
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise PreflightError(f"MLflow store {uri}: {probe} is not a directory; pass --tracking-uri "
                             f"sqlite:///<absolute path in a writable folder>")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PreflightError(f"MLflow store {uri}: folder {probe} is not writable; pass "
                             f"--tracking-uri sqlite:///<absolute path in a writable folder>")
    if os.path.exists(path) and not (os.path.isfile(path) and os.access(path, os.R_OK | os.W_OK)):
        raise PreflightError(f"MLflow store {uri}: the database file {path} is not a readable and "
                             f"writable file")


def _auth_header(parts: urllib.parse.SplitResult) -> str | None:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or urllib.parse.unquote(parts.username or "")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or urllib.parse.unquote(parts.password or "")
    if user or password:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return f"Bearer {token}" if token else None


def _probe(request: urllib.request.Request, timeout: float) -> tuple[int | None, str]:
    """(HTTP status, "") when the server answered, else (None, why not)."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1)
            return 200, ""
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return None, str(getattr(exc, "reason", exc))


def _check_http(uri: str, timeout: float) -> None:
    shown = redact_uri(uri)
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + _PROBE_PATH.split("?")[0],
                                   _PROBE_PATH.split("?")[1], ""))
    request = urllib.request.Request(url, headers={"User-Agent": "mmsa-sweeps-preflight"})
    header = _auth_header(parts)
    if header:
        request.add_header("Authorization", header)
    code, reason, waited = None, "", 0.0
    for attempt_timeout in (timeout, 2 * timeout):  # a busy or cold server gets one longer second try
        waited += attempt_timeout
        code, reason = _probe(request, attempt_timeout)
        if code == 200:
            return
        if code is not None or "timed out" not in reason:
            break  # it answered, or refused / unknown host: no point in waiting longer
    if code is None:
        raise PreflightError(
            f"MLflow tracking server {shown} is not reachable ({reason}; waited at most {waited:g} s). "
            f"Start one, e.g. `mlflow server --host 127.0.0.1 --port {parts.port or 5000} "
            f"--backend-store-uri sqlite:///$PWD/runs/mlflow.db`, or log to a local store with "
            f"--tracking-uri sqlite:///<absolute path>/mlflow.db") from None
    if code == 401:
        how = ("the credentials sent were refused" if header else
               "no credentials were sent")
        raise PreflightError(
            f"authentication failed for {shown} (HTTP 401: {how}); set MLFLOW_TRACKING_USERNAME "
            f"and MLFLOW_TRACKING_PASSWORD in the environment")
    if code == 403:
        raise PreflightError(f"permission denied by {shown} (HTTP 403): the user may not read "
                             f"experiments; ask the server's admin for READ/EDIT permission")
    if code >= 500 or code == 404:
        raise PreflightError(f"MLflow tracking server {shown} answered HTTP {code} to {_PROBE_PATH}: "
                             f"is it an MLflow server (and the right URI path)?")
    # other 4xx: the server answered as a REST API does (e.g. 400 to an unusual parameter): up
