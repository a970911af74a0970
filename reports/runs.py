"""MLflow runs -> a tidy pandas frame (the read side of the MLflow contract, docs/ARCHITECTURE.md).

One row per run: identity columns from tags (method, dataset, stage, ablation, seed, ...), the
run's dataset input (`data_name`, `data_digest`, `data_source`, `data_source_type`, `data_splits`),
the latest value of every metric as `metrics.<key>` (floats), and every param as `params.<name>`
cast from MLflow's strings to int / float / bool / list. Only FINISHED runs are kept; the others are
counted by status so a report can say what it left out.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from mmsa_core.record_names import Tag

KEPT_STATUS = "FINISHED"
IDENTITY_TAGS = ("kind", "method", "dataset", "stage", "ablation", "trial_id", "sweep_name", "stop_reason",
                 "protocol", "rate", Tag.SOURCE_TRIAL_ID)
DATA_COLUMNS = ("data_name", "data_digest", "data_source", "data_source_type", "data_splits")
ID_COLUMNS = ("run_id", "experiment_id", "parent_run_id", "run_name", "status", "start_time", "end_time",
              *IDENTITY_TAGS, "seed", "reference", "stopped_early", *DATA_COLUMNS)
SPLIT_NAMES = ("train", "valid", "test")
SEARCH_PAGE = 10_000  # runs per search request (mlflow.search_runs' own page size)
_INPUT = "input."  # raw-frame prefix of the dataset input's fields (name, digest, source, ...)
_INT_RE = re.compile(r"^[+-]?\d+$")
_RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class ReportError(RuntimeError):
    """A report cannot be built as asked (unknown experiment, sweep, ...); the message says why."""


@dataclass(frozen=True)
class RunSet:
    """FINISHED runs as a tidy frame, and how many runs were left out, by status."""

    runs: Any  # pandas.DataFrame
    excluded: Mapping[str, int] = field(default_factory=dict)
    excluded_ids: Mapping[str, str] = field(default_factory=dict)  # run id -> status

    @property
    def n_excluded(self) -> int:
        return sum(self.excluded.values())


@dataclass(frozen=True)
class DataRecord:
    """A run's MLflow dataset input: what data it trained and was tested on.

    `splits` are the (train, valid, test) sizes the run actually used (the input's profile), so a
    real file cut to smaller splits shows here; `digest` identifies the file (or the synthetic
    generator's settings) whatever it was cut to."""

    name: str | None
    digest: str | None
    source: str | None  # the file or folder loaded, or the synthetic source's name
    source_type: str | None  # "local" | "synthetic"
    splits: tuple[int, int, int] | None


def client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def check_store(uri: str) -> None:
    """Refuse a `sqlite:///` URI whose file does not exist (MLflow would create an empty store)."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):].split("?", 1)[0]
        from pathlib import Path

        if path and path != ":memory:" and not Path(path).exists():
            raise ReportError(f"no MLflow database at {path} (tracking URI {redact(uri)}); pass --tracking-uri "
                              "or set MLFLOW_TRACKING_URI")


def search(uri: str, experiment_id: str, filter_string: str = "") -> Any:
    """Every active run matching `filter_string`, any status, as one raw frame.

    The columns of `mlflow.search_runs` (run_id, experiment_id, status, artifact_uri, start_time,
    end_time, metrics.*, params.*, tags.*) plus the run's dataset input as ``input.name``,
    ``input.digest``, ``input.source``, ``input.source_type`` and ``input.profile``, which
    `mlflow.search_runs` leaves out — read in the same pass, so the budget costs no second query.
    """
    import pandas as pd
    from mlflow.entities import ViewType

    found, token = [], None
    store = client(uri)
    while True:
        page = store.search_runs([experiment_id], filter_string, run_view_type=ViewType.ACTIVE_ONLY,
                                 max_results=SEARCH_PAGE, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            break
    base = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    rows = []
    for run in found:
        row: dict[str, Any] = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
                               "status": run.info.status, "artifact_uri": run.info.artifact_uri,
                               "start_time": run.info.start_time, "end_time": run.info.end_time}
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        inputs = run.inputs.dataset_inputs if run.inputs is not None else []
        if inputs:
            ds = inputs[0].dataset
            row.update({f"{_INPUT}name": ds.name, f"{_INPUT}digest": ds.digest, f"{_INPUT}source": ds.source,
                        f"{_INPUT}source_type": ds.source_type, f"{_INPUT}profile": ds.profile})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else base)
    for name in ("start_time", "end_time"):
        frame[name] = pd.to_datetime(pd.array(list(frame[name]), dtype="Float64"), unit="ms", utc=True)
    return frame


def tidy(raw: Any) -> Any:
    """Identity columns + `metrics.*` (float) + `params.*` (cast); one row per run."""
    import pandas as pd

    n = len(raw)

    def col(name: str) -> list:
        return list(raw[name]) if name in raw.columns else [None] * n

    out = pd.DataFrame({
        "run_id": col("run_id"),
        "experiment_id": col("experiment_id"),
        "parent_run_id": col("tags.mlflow.parentRunId"),
        "run_name": col("tags.mlflow.runName"),
        "status": col("status"),
        "start_time": raw["start_time"] if "start_time" in raw.columns else pd.Series([pd.NaT] * n),
        "end_time": raw["end_time"] if "end_time" in raw.columns else pd.Series([pd.NaT] * n),
    }, index=raw.index)
    for tag in IDENTITY_TAGS:
        out[tag] = [_none(v) for v in col(f"tags.{tag}")]
    seeds = [_to_int(t) if _none(t) is not None else _to_int(p) for t, p in zip(col("tags.seed"), col("params.seed"))]
    out["seed"] = pd.array(seeds, dtype="Int64")
    out["reference"] = [_to_bool(v) is True for v in col("tags.reference")]
    out["stopped_early"] = pd.array([_to_bool(v) for v in col("tags.stopped_early")], dtype="boolean")
    records = [data_record({k: raw.at[i, k] for k in raw.columns if k.startswith(_INPUT)},
                           digest_tag=t) for i, t in zip(raw.index, col(f"tags.{Tag.DATASET_DIGEST}"))]
    out["data_name"] = [r.name for r in records]
    out["data_digest"] = [r.digest for r in records]
    out["data_source"] = [r.source for r in records]
    out["data_source_type"] = [r.source_type for r in records]
    out["data_splits"] = [r.splits for r in records]
    metric_cols = sorted(c for c in raw.columns if c.startswith("metrics."))
    param_cols = sorted(c for c in raw.columns if c.startswith("params."))
    extra = {c: raw[c].astype(float) for c in metric_cols}
    extra.update({c: cast_param(list(raw[c])) for c in param_cols})
    if extra:
        out = pd.concat([out, pd.DataFrame(extra, index=raw.index)], axis=1)
    return out.reset_index(drop=True)


def data_record(fields: Mapping[str, Any], *, digest_tag: Any = None) -> DataRecord:
    """A `DataRecord` from a raw row's ``input.*`` fields; the child tag ``dataset_digest`` stands
    in for the digest where a run has no dataset input (the driver computes it for every child)."""
    def get(key: str) -> Any:
        return _none(fields.get(_INPUT + key))

    source = get("source")
    if isinstance(source, str) and source.startswith("{"):
        try:
            source = json.loads(source).get("uri", source)
        except (ValueError, AttributeError):
            pass
    splits = None
    profile = get("profile")
    if isinstance(profile, str):
        try:
            sizes = json.loads(profile).get("splits") or {}
            if all(k in sizes for k in SPLIT_NAMES):
                splits = tuple(int(sizes[k]) for k in SPLIT_NAMES)
        except (ValueError, TypeError, AttributeError):
            splits = None
    digest = get("digest") or _none(digest_tag)
    return DataRecord(get("name"), None if digest is None else str(digest),
                      None if source is None else str(source), get("source_type"), splits)


def cast_param(values: list) -> list:
    """Cast one param column from MLflow strings: all-int -> int, all-number -> float,
    all True/False -> bool, JSON lists -> tuple; anything else stays a string. Missing stays None."""
    present = [v for v in values if _none(v) is not None]
    if not present:
        return [None] * len(values)
    if all(_INT_RE.match(str(v).strip()) for v in present):
        return [int(v) if _none(v) is not None else None for v in values]
    if all(_is_float(v) for v in present):
        return [float(v) if _none(v) is not None else None for v in values]
    if all(str(v).strip().lower() in ("true", "false") for v in present):
        return [_to_bool(v) for v in values]
    if all(str(v).strip().startswith("[") for v in present):
        try:
            return [tuple(json.loads(v)) if _none(v) is not None else None for v in values]
        except (ValueError, TypeError):
            pass
    return [_none(v) for v in values]


def split_finished(frame: Any) -> RunSet:
    """Keep FINISHED runs; count the others by status."""
    kept = frame[frame["status"] == KEPT_STATUS].reset_index(drop=True)
    left = frame[frame["status"] != KEPT_STATUS]
    counts = {str(k): int(v) for k, v in left["status"].value_counts().sort_index().items()}
    return RunSet(kept, counts, dict(zip(left["run_id"], left["status"])))


def load_runs(uri: str, experiment_id: str, *, parent_run_id: str | None = None,
              tags: Mapping[str, str] | None = None) -> RunSet:
    """Children of `parent_run_id` (or all runs of the experiment) matching `tags`, tidy."""
    clauses = []
    if parent_run_id:
        clauses.append(f"tags.mlflow.parentRunId = '{_quote(parent_run_id)}'")
    for k, v in (tags or {}).items():
        clauses.append(f"tags.{k} = '{_quote(v)}'")
    return split_finished(tidy(search(uri, experiment_id, " and ".join(clauses))))


def latest_per_seed(frame: Any) -> tuple[Any, int]:
    """One run per seed (the newest start); runs without a seed are kept. Returns (frame, dropped)."""
    if frame.empty:
        return frame, 0
    has_seed = frame[frame["seed"].notna()].sort_values("start_time")
    kept = has_seed.drop_duplicates(subset="seed", keep="last")
    out = frame.loc[sorted(set(kept.index) | set(frame.index[frame["seed"].isna()]))]
    return out.sort_values("seed").reset_index(drop=True), len(frame) - len(out)


# --- resolving names ----------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    id: str
    name: str


@dataclass(frozen=True)
class Parent:
    run_id: str
    name: str  # sweep_name tag, else the run name
    kind: str  # "sweep" | "ablation"
    method: str | None
    dataset: str | None
    start_time: Any
    tags: Mapping[str, str]
    data: DataRecord | None = None  # the parent's dataset input (the data its driver loaded)


def list_experiments(uri: str) -> list[Experiment]:
    return [Experiment(e.experiment_id, e.name) for e in client(uri).search_experiments()]


def resolve_experiment(uri: str, name_or_id: str | None, *, run_id: str | None = None) -> Experiment:
    """By name or id; without one, the experiment of `run_id`, else the only `mmsa-*` experiment."""
    check_store(uri)
    available = list_experiments(uri)
    if name_or_id:
        for e in available:
            if name_or_id in (e.name, e.id):
                return e
        raise ReportError(f"no MLflow experiment named or with id {name_or_id!r} at {redact(uri)}; "
                          f"available: {_names([e.name for e in available])}")
    if run_id:
        try:
            exp_id = client(uri).get_run(run_id).info.experiment_id
        except Exception as exc:  # MlflowException: RESOURCE_DOES_NOT_EXIST
            raise ReportError(f"no run with id {run_id} at {redact(uri)}") from exc
        for e in available:
            if e.id == exp_id:
                return e
        raise ReportError(f"run {run_id} belongs to experiment {exp_id}, which is deleted")
    mmsa = [e for e in available if e.name.startswith("mmsa-")]
    if len(mmsa) == 1:
        return mmsa[0]
    raise ReportError(f"give --experiment; experiments at {redact(uri)}: {_names([e.name for e in available])}")


def list_parents(uri: str, experiment_id: str, kind: str) -> list[Parent]:
    """Parent runs of one kind (`tags.kind`), newest first."""
    frame = search(uri, experiment_id, f"tags.kind = '{_quote(kind)}'")
    parents = []
    for _, r in frame.iterrows():
        tags = {c[5:]: v for c, v in r.items() if c.startswith("tags.") and _none(v) is not None}
        if tags.get("mlflow.parentRunId"):
            continue
        name = tags.get("sweep_name") or tags.get("mlflow.runName") or r["run_id"]
        record = data_record({c: v for c, v in r.items() if c.startswith(_INPUT)})
        parents.append(Parent(r["run_id"], name, kind, tags.get("method"), tags.get("dataset"),
                              r["start_time"], tags, record if record.digest or record.splits else None))
    return sorted(parents, key=lambda p: p.start_time, reverse=True)


def resolve_parent(uri: str, experiment_id: str, name_or_id: str, kind: str) -> tuple[Parent, list[str]]:
    """A sweep/ablation parent by run id, `sweep_name` tag or run name. Returns (parent, notes);
    a name shared by several parents resolves to the newest, and the note says so."""
    parents = list_parents(uri, experiment_id, kind)
    for p in parents:
        if p.run_id == name_or_id:
            return p, []
    matches = [p for p in parents if name_or_id in (p.name, p.tags.get("mlflow.runName"))]
    if not matches:
        if _RUN_ID_RE.match(name_or_id):
            raise ReportError(f"run {name_or_id} is not a {kind} parent run in experiment {experiment_id}; "
                              f"{kind}s there: {_names([p.name for p in parents])}")
        raise ReportError(f"no {kind} named {name_or_id!r} in experiment {experiment_id}; "
                          f"available {kind}s: {_names([p.name for p in parents])}")
    notes = []
    if len(matches) > 1:
        notes.append(f"{len(matches)} {kind} parent runs are named {name_or_id!r}; using the newest "
                     f"({matches[0].run_id}), not {', '.join(p.run_id for p in matches[1:])}")
    return matches[0], notes


def file_splits(uri: str, experiment_id: str, digest: str) -> tuple[int, int, int] | None:
    """The (train, valid, test) sizes of the real data file with `digest`, or None when MLflow cannot say.

    MLflow stores one dataset per (experiment, name, digest) and keeps the profile of the first
    run that logged it, so a file's profile holds the sizes of whichever run came first — cut or
    not. It is the file's own sizes only when some child run loaded the file whole (params
    ``synthetic_train/valid/test`` all 0) and the profile is not the size of any cut run
    (a run with one of those params > 0) on the same file.
    """
    try:
        frame = tidy(search(uri, experiment_id, f"datasets.digest = '{_quote(digest)}'"))
    except Exception:  # a store that cannot filter on dataset inputs: the sizes stay unknown
        return None
    columns = [f"params.synthetic_{k}" for k in SPLIT_NAMES]
    if frame.empty or not all(c in frame.columns for c in columns):
        return None
    whole, cut, profiles = False, set(), set()
    for i in range(len(frame)):
        sizes = tuple(_to_int(frame.at[i, c]) for c in columns)
        if frame.at[i, "data_splits"]:
            profiles.add(frame.at[i, "data_splits"])
        if any(v is None for v in sizes):
            continue  # a parent run: it logs the data it loaded but not how
        if any(sizes):
            cut.add(sizes)
        else:
            whole = True
    return profiles.pop() if whole and len(profiles) == 1 and not profiles & cut else None


def redact(uri: str) -> str:
    """A tracking URI without credentials (user:password@) for printing."""
    return re.sub(r"//[^/@]*@", "//***@", uri)


# --- helpers --------------------------------------------------------------------------------


def _names(names: list[str]) -> str:
    return ", ".join(sorted(set(names))) if names else "(none)"


def _quote(s: str) -> str:
    return str(s).replace("'", "\\'")


def _none(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def _is_float(v: Any) -> bool:
    try:
        float(str(v))
        return True
    except ValueError:
        return False


def _to_int(v: Any) -> int | None:
    v = _none(v)
    if v is None:
        return None
    try:
        return int(str(v).strip())
    except ValueError:
        try:
            f = float(v)
            return int(f) if f.is_integer() else None
        except ValueError:
            return None


def _to_bool(v: Any) -> bool | None:
    v = _none(v)
    if v is None:
        return None
    s = str(v).strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    return None
