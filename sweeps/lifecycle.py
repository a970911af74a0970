"""The life of a sweep's or an ablation study's MLflow parent run, from storage to final status.

Why a module of its own: `sweeps.search.run_sweep` and `ablations.runner.run_ablation` drive the
same life around their trials, and it has rules that must not drift apart between the two:

1. before anything is recorded: the storage path and a SQLite store's folder must be writable
   (`prepare_storage`, `SweepStateError`), the data valid (the caller's `prepare_data`), Ray
   reachable with a node that can hold one trial (`connect_checked`, `SweepValidationError`);
2. `parent_run`: the parent run is opened — or found again by ``kind`` + ``sweep_name`` and set
   RUNNING, on a resume — with the caller's tags plus ``code_version``; whatever the body does,
   the parent ends FINISHED / KILLED / FAILED and no child of it is left RUNNING. Given the
   loaded data, the parent records it as its dataset input and every child gets its digest
   (``dataset_digest`` in `ParentRun.target`'s tags; the trials log the same input without
   hashing the file again); ``description`` is the parent's ``mlflow.note.content``. A parent
   found again whose dataset input has another digest is refused before it is touched
   (`check_same_data`, `DatasetChangedError`): its runs and new ones would not be comparable.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from sweeps.cluster import REPO_ROOT, check_resources, connect
from sweeps.config import TrackingTarget
from sweeps.runtime_options import TrialResources
from sweeps.state import DatasetChangedError, code_version, ensure_dir
from sweeps.tracking import DATASET_DIGEST_TAG, TERMINAL_STATUSES, dataset_record

if TYPE_CHECKING:
    from sweeps.tracking import Tracker

ERROR_TAG = "error"  # the parent's tag for the exception that ended it FAILED


def prepare_storage(directory: str, tracking_uri: str) -> None:
    """Create `directory` and, for a SQLite store, the database's folder (`SweepStateError`)."""
    ensure_dir(directory)
    if tracking_uri.startswith("sqlite:///"):
        ensure_dir(os.path.dirname(tracking_uri[len("sqlite:///"):]) or ".")


def connect_checked(address: str, num_cpus: int, resources: TrialResources, num_gpus: int = -1) -> dict[str, float]:
    """`connect` to Ray, then refuse a trial shape no node can hold (`SweepValidationError`)."""
    cluster = connect(address, num_cpus, num_gpus)
    check_resources(resources)
    return cluster


@dataclass
class ParentRun:
    """The open parent run `parent_run` yields.

    `status` is what a body that returns records: FINISHED unless the body sets it (an ablation
    whose runs did not all finish sets FAILED). Interrupts and exceptions override it.
    """

    tracker: "Tracker"
    experiment_id: str
    run_id: str
    name: str
    kind: str
    status: str = "FINISHED"
    dataset_digest: str = ""

    def target(self, **tags: str) -> TrackingTarget:
        """Where the children go: this parent, with ``sweep_name`` and `tags` on every child."""
        extra = {DATASET_DIGEST_TAG: self.dataset_digest} if self.dataset_digest else {}
        return TrackingTarget(tracking_uri=self.tracker.tracking_uri, experiment_id=self.experiment_id,
                              parent_run_id=self.run_id,
                              tags={"sweep_name": self.name, **extra, **tags})

    def describe(self, text: str) -> None:
        """Set the parent's description (``mlflow.note.content``); never raises."""
        with contextlib.suppress(Exception):
            self.tracker.describe(self.run_id, text)


@contextlib.contextmanager
def parent_run(tracker: "Tracker", experiment_id: str, *, name: str, kind: str,
               tags: Mapping[str, str], dataset: Any = None,
               description: str = "") -> Iterator[ParentRun]:
    """Open (or reopen) the parent run of sweep / study `name`, and always end it.

    ``kind`` is ``sweep`` or ``ablation``. The parent's final status is `ParentRun.status` when
    the body returns (FINISHED by default), KILLED on a KeyboardInterrupt (`SweepInterrupted`
    included: Ctrl-C, state saved, re-run to resume), FAILED on any other exception, with
    ``<type>: <message>`` in the ``error`` tag (an ``error`` left by an earlier attempt is removed
    when the parent is reopened). `dataset` (the loaded `MSADataset`) becomes the parent's MLflow
    dataset input, its digest `ParentRun.dataset_digest` (on every child through `target`);
    `description` is the parent's ``mlflow.note.content`` (`ParentRun.describe` updates it).
    Then every child still open is KILLED with
    ``killed_reason = "<kind> ended (<status>)"``. Neither clean-up step raises: the caller sees
    the body's own exception.
    """
    record = dataset_record(dataset) if dataset is not None else None
    if record is not None:
        check_same_data(tracker, experiment_id, kind=kind, name=name, record=record)
    run_id = tracker.parent_run(experiment_id, name=name, kind=kind,
                                tags={"code_version": code_version(REPO_ROOT), **tags})
    run = ParentRun(tracker=tracker, experiment_id=experiment_id, run_id=run_id, name=name, kind=kind)
    status, end_tags = "FAILED", {}
    try:
        if ERROR_TAG in tracker.client.get_run(run_id).data.tags:  # a resume of a failed attempt
            tracker.client.delete_tag(run_id, ERROR_TAG)
        if record is not None:
            tracker.log_dataset(run_id, record, context=kind)
            run.dataset_digest = record["digest"]
        if description:
            tracker.describe(run_id, description)
        yield run
        if run.status not in TERMINAL_STATUSES:
            raise ValueError(f"parent run status {run.status!r} is not one of {sorted(TERMINAL_STATUSES)}")
        status = run.status
    except KeyboardInterrupt:  # SweepInterrupted included
        status = "KILLED"
        raise
    except Exception as exc:
        end_tags = {ERROR_TAG: f"{type(exc).__name__}: {exc}"}
        raise
    finally:
        with contextlib.suppress(Exception):
            tracker.kill_leftovers(experiment_id, run_id, reason=f"{kind} ended ({status})")
        with contextlib.suppress(Exception):
            tracker.finish(run_id, status, tags=end_tags)


def check_same_data(tracker: "Tracker", experiment_id: str, *, kind: str, name: str, record: Mapping[str, Any]) -> None:
    """Refuse to resume `kind` `name` on data other than its parent's dataset input (`DatasetChangedError`,
    naming both digests and split sizes). A parent with no dataset input (never opened with data) passes."""
    earlier = tracker.find_parent(experiment_id, kind=kind, name=name)
    inputs = list(getattr(getattr(earlier, "inputs", None), "dataset_inputs", None) or []) if earlier else []
    recorded = {d.dataset.digest: d.dataset for d in inputs}
    if not recorded or record["digest"] in recorded:
        return
    before = next(iter(recorded.values()))
    try:
        splits = json.loads(before.profile or "{}").get("splits") or {}
    except ValueError:
        splits = {}
    was = "/".join(str(v) for v in splits.values()) or "?"
    now = "/".join(str(v) for v in record.get("sizes", {}).values())
    raise DatasetChangedError(
        f"{kind} {name!r} recorded its runs on {before.name} with digest {before.digest} (train/valid/test "
        f"{was}); the data loaded now ({record.get('source')}) has digest {record['digest']} (train/valid/test "
        f"{now}), so new runs would not be comparable with the recorded ones: resume it with the data it was "
        f"started with (for the built-in synthetic data, --set synthetic_valid=... / synthetic_test=... at the "
        f"sizes above), or start a new {kind} with a new --name")
