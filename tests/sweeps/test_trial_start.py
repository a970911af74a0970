"""A trial whose node cannot see the sweep's SQLite MLflow store fails in seconds, naming the node and
the path, and creates nothing there (MLflow would create an empty database and fail only after
--mlflow-wait with "No Experiment with id=1 exists"). Simulated on one node: the trial is handed a
store that does not exist here, or another copy without the sweep's experiment."""

from __future__ import annotations

import socket
import time

import pytest

from sweeps.config import TrackingTarget
from sweeps.runtime_options import TrialResources
from sweeps.trial import StoreNotVisible, TrialContext, check_storage_visible, check_store_visible, run_trial


def _context(uri: str, experiment_id: str = "1") -> TrialContext:
    target = TrackingTarget(tracking_uri=uri, experiment_id=experiment_id, parent_run_id="p", tags={})
    return TrialContext(target=target, resources=TrialResources(), mlflow_wait=600.0)


def test_a_trial_fails_in_seconds_when_its_node_cannot_see_the_store(tmp_path):
    db = tmp_path / "runs" / "mlflow.db"  # the driver's store, absent on "this node"
    start = time.monotonic()
    with pytest.raises(StoreNotVisible) as err:
        run_trial({}, data=None, context=_context(f"sqlite:///{db}"))  # type: ignore[arg-type]
    assert time.monotonic() - start < 30
    message = str(err.value)
    assert socket.gethostname() in message and str(db) in message and "shared storage" in message
    assert not db.exists() and not db.parent.exists()  # no empty database left behind


def test_another_copy_of_the_store_without_the_experiment_is_refused(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = MlflowClient(tracking_uri=uri).create_experiment("mmsa-synthetic-mosi")
    check_store_visible(uri, experiment_id)  # the driver's own store: fine
    check_store_visible("http://127.0.0.1:5000", "1")  # a server is reached over the network: not checked here
    with pytest.raises(StoreNotVisible, match=f"without experiment {int(experiment_id) + 7}"):
        check_store_visible(uri, str(int(experiment_id) + 7))


def test_a_storage_path_missing_on_this_node_is_refused(tmp_path):
    import pyarrow.fs

    fs = pyarrow.fs.LocalFileSystem()
    check_storage_visible(fs, str(tmp_path))  # there: fine
    missing = str(tmp_path / "runs" / "sweep" / "search")
    with pytest.raises(StoreNotVisible) as err:
        check_storage_visible(fs, missing)
    assert socket.gethostname() in str(err.value) and missing in str(err.value)
