"""MLflow bookkeeping of sweeps — the only module of the project's sweep layer that imports mlflow.

It writes the MLflow contract of docs/ARCHITECTURE.md:

- one experiment per dataset, ``mmsa-<dataset name>`` (`Tracker.experiment`), tagged a
  model-training experiment (``mlflow.experimentKind``, `EXPERIMENT_KIND`) so that MLflow 3's UI
  treats it as one (see `ui_url`: MLflow >= 3.5 also needs ``?workflowType=machine_learning``);
- the data every run used as an MLflow dataset input (`dataset_record`, `Tracker.log_dataset`):
  name, digest (computed once, in the driver), source, split sizes;
- one parent run per sweep / study, found again by its tags ``kind`` + ``sweep_name`` on a resume
  (`Tracker.parent_run`);
- one child per trial (`Tracker.child_run`), tagged ``mlflow.parentRunId`` and ``run_key``;
  creation is idempotent — the run is looked up by ``run_key`` first, and duplicates a retried
  POST may create are deleted, keeping the oldest — so a restored or retried trial continues its
  own run; params = every RunConfig field, flat (`flatten_params`);
- metrics one `log_batch` per epoch, ``step`` = epoch (`Tracker.log_metrics`);
- final statuses set by the driver (`Tracker.finish`), and `Tracker.kill_leftovers` so that no
  child is ever left RUNNING.

Only `MlflowClient` is used, never the fluent ``mlflow.start_run`` stack: nothing here depends on
process-global state, an atexit hook can never mark a crashed trial FINISHED, and
``MLFLOW_RUN_ID`` is never read or exported. Objects hold a URI and create the client lazily,
so they pickle (Ray ships the driver callback and the trial context).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any, Iterable, Mapping

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, Run, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mmsa_core.record_names import Tag

TERMINAL_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})
_SAFE = re.compile(r"^[A-Za-z0-9_.:=+@-]+$")
_MAX_TAG = 5000  # MLflow's tag value limit is 8000; keep error texts well inside it
_MAX_PARAM = 6000
# MLflow 3's UI opens a "model training" experiment on its runs table (a GenAI one on traces).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the run's description in the UI
DATASET_DIGEST_TAG = Tag.DATASET_DIGEST  # on every child (TrackingTarget.tags): its dataset input's digest
DATASET_CONTEXT_TAG = "mlflow.data.context"


def ui_command(tracking_uri: str) -> str:
    """The command that opens the MLflow UI on `tracking_uri` (a server is opened directly)."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    return f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1"


def ui_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table in the UI at `base` (MLflow 3.x opens GenAI pages otherwise)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    paths = [path] if os.path.isfile(path) else sorted(
        os.path.join(d, f) for d, _, files in os.walk(path) for f in files)
    for p in paths:
        h.update(os.path.relpath(p, path).encode() if p != path else b"")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def dataset_record(data: Any) -> dict[str, Any]:
    """What identifies a loaded `MSADataset` as an MLflow dataset: name, digest, source, sizes.

    The digest is the file's (or directory's) SHA-256 for real data, and for synthetic data that
    of the generator's settings (name, split sizes, sequence shapes; the data seed is fixed).
    It reads the whole file once: call it in the driver and pass the digest on
    (`DATASET_DIGEST_TAG` in `TrackingTarget.tags`), never per trial.
    """
    sizes = {k: int(v) for k, v in data.sizes.items()}
    source = str(data.source)
    if not data.is_synthetic and os.path.exists(os.path.expanduser(source)):
        source = os.path.abspath(os.path.expanduser(source))
        digest, source_type = _file_digest(source), "local"
    else:
        settings = {"name": data.name, "source": source, "sizes": sizes, "text_len": data.text_len,
                    "audio_dim": data.audio_dim, "vision_dim": data.vision_dim}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        source_type = "synthetic"
    return {"name": data.name, "digest": digest, "source": source, "source_type": source_type,
            "sizes": sizes}


def experiment_name(dataset: str) -> str:
    """``mmsa-<dataset name>``: every method's runs on a dataset share it (compare view)."""
    return f"mmsa-{dataset}"


def flatten_params(config: Mapping[str, Any]) -> dict[str, str]:
    """A flat RunConfig dict as MLflow params: lists/tuples as JSON lists, the rest as str."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, (list, tuple)):
            text = json.dumps(list(value))
        elif isinstance(value, bool):
            text = str(value)
        else:
            text = str(value)
        out[key] = text[:_MAX_PARAM]
    return out


def _quote(value: str) -> str:
    if not _SAFE.match(value):
        raise ValueError(f"{value!r}: MLflow lookup keys may hold only letters, digits and _.:=+@-")
    return f"'{value}'"


class Tracker:
    """MLflow access for one tracking URI, from the driver or from inside a trial."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client: MlflowClient | None = None

    # pickling: ship the URI, not the store connection
    def __getstate__(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "_client": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    # ------------------------------------------------------------------------------------------
    # experiments and parent runs

    def experiment(self, dataset: str) -> str:
        """Id of ``mmsa-<dataset>``, created on first use (artifacts beside a SQLite store)."""
        name = experiment_name(dataset)
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                return self.client.create_experiment(
                    name, artifact_location=self._artifact_root(name),
                    tags={"dataset": dataset, EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            except MlflowException:  # created meanwhile by another driver
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
        if exp.lifecycle_stage == "deleted":
            self.client.restore_experiment(exp.experiment_id)
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # made before the tag, or by hand
            self.client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id

    def _artifact_root(self, name: str) -> str | None:
        """For a SQLite store: ``<db dir>/mlartifacts/<experiment>`` (never the cwd's ./mlruns).

        A server (``http://``) chooses its own artifact root (``--artifacts-destination``).
        """
        if self.tracking_uri.startswith("sqlite:///"):
            db = self.tracking_uri[len("sqlite:///"):]
            root = os.path.join(os.path.dirname(os.path.abspath(db)), "mlartifacts", name)
            return "file://" + root
        return None

    def find_parent(self, experiment_id: str, *, kind: str, name: str) -> Run | None:
        """The parent run of sweep / study `name` of `kind` (the oldest, should a retried POST have
        made two), or None."""
        found = self._parents(experiment_id, kind=kind, name=name)
        return _oldest(found) if found else None

    def parent_run(self, experiment_id: str, *, name: str, kind: str, tags: Mapping[str, str]) -> str:
        """The sweep's / study's parent run: found by ``kind`` + ``sweep_name``, else created.

        A found parent is set RUNNING again (a resume) and gets the given tags.
        """
        all_tags = {Tag.KIND: kind, Tag.NAME: name, **{k: str(v) for k, v in tags.items()}}
        run = self.find_parent(experiment_id, kind=kind, name=name)
        if run is not None:
            self.client.update_run(run.info.run_id, status="RUNNING")
            self.set_tags(run.info.run_id, all_tags)
            return run.info.run_id
        run = self.client.create_run(experiment_id, run_name=name, tags=all_tags)
        return self._dedupe(self._parents(experiment_id, kind=kind, name=name), run).info.run_id

    def _parents(self, experiment_id: str, *, kind: str, name: str) -> list[Run]:
        filt = f"tags.{Tag.KIND} = {_quote(kind)} AND tags.{Tag.NAME} = {_quote(name)}"
        return [r for r in self._search(experiment_id, filt) if MLFLOW_PARENT_RUN_ID not in r.data.tags]

    # ------------------------------------------------------------------------------------------
    # child runs

    def find_child(self, experiment_id: str, parent_run_id: str, run_key: str) -> Run | None:
        runs = self._search(experiment_id, self._child_filter(parent_run_id, run_key))
        return _oldest(runs) if runs else None

    def child_run(self, *, experiment_id: str, parent_run_id: str, run_key: str, run_name: str,
                  tags: Mapping[str, str], params: Mapping[str, str]) -> tuple[str, bool]:
        """(run id, existed) of the child for `run_key`; an existing one is set RUNNING again."""
        all_tags = {MLFLOW_PARENT_RUN_ID: parent_run_id, Tag.RUN_KEY: run_key,
                    **{k: str(v) for k, v in tags.items()}}
        existing = self.find_child(experiment_id, parent_run_id, run_key)
        if existing is not None:
            run_id = existing.info.run_id
            self.client.update_run(run_id, status="RUNNING")
            self.set_tags(run_id, {k: v for k, v in all_tags.items() if k != MLFLOW_PARENT_RUN_ID})
            self._log_params(run_id, params, existing.data.params)
            return run_id, True
        run = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        runs = self._search(experiment_id, self._child_filter(parent_run_id, run_key))
        kept = self._dedupe(runs, run)
        self._log_params(kept.info.run_id, params, kept.data.params)
        return kept.info.run_id, kept.info.run_id != run.info.run_id

    def reopen(self, run_id: str, tags: Mapping[str, str]) -> bool:
        """Set an existing, not deleted run RUNNING again (a resumed trial); False if unusable."""
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return False
        if run.info.lifecycle_stage != "active":
            return False
        self.client.update_run(run_id, status="RUNNING")
        self.set_tags(run_id, {k: v for k, v in tags.items() if k != MLFLOW_PARENT_RUN_ID})
        return True

    def children(self, experiment_id: str, parent_run_id: str, *, stage: str | None = None) -> list[Run]:
        filt = f"tags.`{MLFLOW_PARENT_RUN_ID}` = {_quote(parent_run_id)}"
        if stage:
            filt += f" AND tags.{Tag.STAGE} = {_quote(stage)}"
        return self._search(experiment_id, filt)

    # ------------------------------------------------------------------------------------------
    # logging

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int,
                    timestamp_ms: int | None = None) -> None:
        """One batch: every metric of an epoch in a single request.

        `timestamp_ms` fixed by the caller makes a re-send idempotent: MLflow drops a metric row
        identical in (key, value, timestamp, step) to one it has, so a batch that reached the store
        although the client saw an error is not recorded twice when it is sent again."""
        now = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):  # MLflow's per-request metric limit
            self.client.log_batch(run_id, metrics=batch[i:i + 1000], synchronous=True)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Log the params the run does not have yet (MLflow params are immutable)."""
        self._log_params(run_id, params, self.client.get_run(run_id).data.params)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:_MAX_TAG]) for k, v in tags.items()],
                                  synchronous=True)

    def describe(self, run_id: str, text: str) -> None:
        """The run's description (``mlflow.note.content``, shown on the run's page)."""
        self.set_tags(run_id, {NOTE_TAG: text})

    def log_dataset(self, run_id: str, record: Mapping[str, Any], *, context: str) -> None:
        """Record `record` (`dataset_record`) as the run's dataset input; idempotent.

        MLflow keeps one dataset per (experiment, name, digest) and one input edge per run, so a
        resumed run logging it again adds nothing.
        """
        sizes = dict(record.get("sizes") or {})
        profile = json.dumps({"num_rows": sum(sizes.values()), "splits": sizes})
        schema = json.dumps({"splits": sorted(sizes)})
        ds = Dataset(name=str(record["name"]), digest=str(record["digest"]),
                     source_type=str(record.get("source_type", "local")),
                     source=json.dumps({"uri": str(record.get("source", ""))}),
                     schema=schema, profile=profile)
        self.client.log_inputs(run_id, datasets=[
            DatasetInput(ds, tags=[InputTag(DATASET_CONTEXT_TAG, context)])])

    def log_trial_dataset(self, run_id: str, data: Any, tags: Mapping[str, str], *,
                          context: str) -> None:
        """Inside a trial: the dataset input from the loaded data and the digest in `tags`.

        Does nothing without ``tags[DATASET_DIGEST_TAG]`` (the driver computes it; a trial never
        hashes the data file).
        """
        digest = tags.get(DATASET_DIGEST_TAG)
        if not digest:
            return
        source = str(data.source)
        if not data.is_synthetic and os.path.exists(os.path.expanduser(source)):
            source, source_type = os.path.abspath(os.path.expanduser(source)), "local"
        else:
            source_type = "synthetic"
        self.log_dataset(run_id, {"name": data.name, "digest": digest, "source": source,
                                  "source_type": source_type,
                                  "sizes": {k: int(v) for k, v in data.sizes.items()}},
                         context=context)

    def log_json(self, run_id: str, obj: Any, artifact_file: str) -> None:
        self.client.log_dict(run_id, obj, artifact_file)

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, local_dir, artifact_path)

    def has_artifact(self, run_id: str, path: str) -> bool:
        return any(f.path == path for f in self.client.list_artifacts(run_id))

    def finish(self, run_id: str, status: str, *, tags: Mapping[str, Any] | None = None) -> None:
        """Set a run's final status (FINISHED | FAILED | KILLED), tags first."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"status {status!r} is not one of {sorted(TERMINAL_STATUSES)}")
        self.set_tags(run_id, dict(tags or {}))
        self.client.set_terminated(run_id, status)

    def status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    def kill_leftovers(self, experiment_id: str, parent_run_id: str, *, reason: str) -> list[str]:
        """Mark every child of the parent that is not terminal KILLED; returns their ids."""
        killed = []
        for run in self.children(experiment_id, parent_run_id):
            if run.info.status not in TERMINAL_STATUSES:
                self.finish(run.info.run_id, "KILLED", tags={Tag.KILLED_REASON: reason})
                killed.append(run.info.run_id)
        return killed

    # ------------------------------------------------------------------------------------------
    # internals

    @staticmethod
    def _child_filter(parent_run_id: str, run_key: str) -> str:
        return f"tags.`{MLFLOW_PARENT_RUN_ID}` = {_quote(parent_run_id)} AND tags.{Tag.RUN_KEY} = {_quote(run_key)}"

    def _search(self, experiment_id: str, filter_string: str) -> list[Run]:
        runs: list[Run] = []
        token = None
        while True:
            page = self.client.search_runs([experiment_id], filter_string=filter_string,
                                           run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                           page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _dedupe(self, runs: Iterable[Run], created: Run) -> Run:
        """Keep the oldest of runs that share a lookup key; delete the others (retried POSTs)."""
        runs = list(runs) or [created]
        keep = _oldest(runs)
        for run in runs:
            if run.info.run_id != keep.info.run_id:
                self.client.delete_run(run.info.run_id)
        return keep

    def _log_params(self, run_id: str, params: Mapping[str, str], present: Mapping[str, str]) -> None:
        """Log the params not yet on the run (params are immutable: never log one twice)."""
        todo = [Param(k, v) for k, v in params.items() if k not in present]
        for i in range(0, len(todo), 100):  # MLflow's per-request param limit
            self.client.log_batch(run_id, params=todo[i:i + 100], synchronous=True)


def _oldest(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def mlflow_version() -> str:
    return mlflow.__version__
