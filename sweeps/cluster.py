"""Driver-side set-up before any trial exists: the data, the Ray connection, resources, sharing.

Why a module of its own: these are the steps that must fail *before* anything is launched or
recorded (`SweepValidationError`), and they are the same for a sweep and for an ablation grid.
Imports Ray, never ``ray.tune``.

``prepare_data(run_cfg) -> MSADataset``
    Load and validate the data a RunConfig names, and build the model once, in the driver, so a
    bad file or configuration fails before any trial exists (`SweepValidationError`).

``connect(address="", num_cpus=0, num_gpus=-1) -> dict`` and ``check_resources(TrialResources)``
    ``ray.init``: a cluster address (``--address`` or ``$RAY_ADDRESS``; also what ``ray job
    submit`` sets) is joined with no resource arguments; otherwise a local Ray is started, with
    the repository on the workers' ``PYTHONPATH``. `check_resources` refuses a trial shape no
    node can hold (e.g. a GPU on a CPU-only cluster, more memory than a node has) instead of
    leaving trials PENDING forever.

``share_dataset(data) -> DatasetRef``
    Put the dataset (NumPy arrays, token ids included) in the object store once; every trial of
    every grid on a node then reads it zero-copy. Pass the ref to several `run_grid` calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray

from sweeps.runtime_options import TrialResources
from sweeps.storage import storage_env

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset

THREAD_TIMEOUT_VAR = "TUNE_FUNCTION_THREAD_TIMEOUT_S"
GB = 1024**3  # Ray counts its memory resource in bytes
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SweepValidationError(ValueError):
    """The sweep cannot start (data, configuration, resources); nothing was launched."""


@dataclass(frozen=True)
class DatasetRef:
    """A dataset already in Ray's object store (see `share_dataset`)."""

    ref: Any  # ray.ObjectRef
    name: str


def prepare_data(run_cfg: "RunConfig") -> "MSADataset":
    """Load + validate the dataset `run_cfg` names and build its model once, in the driver.

    Raises `SweepValidationError` with the data layer's full message (every problem, naming file,
    split, key and shape) or the model's configuration error.
    """
    from mmsa_core.data import DataValidationError
    from mmsa_core.trainer import build_model, load_run_data

    try:
        data = load_run_data(run_cfg)
    except DataValidationError as exc:
        raise SweepValidationError(str(exc)) from None
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise SweepValidationError(f"data {run_cfg.data!r}: {exc}") from None
    try:
        build_model(run_cfg.replace(device="cpu"), data)
    except ValueError as exc:
        raise SweepValidationError(f"configuration does not fit the data {data.name}: {exc}") from None
    return data


def connect(address: str = "", num_cpus: int = 0, num_gpus: int = -1) -> dict[str, float]:
    """Join a Ray cluster (address given / in ``$RAY_ADDRESS``) or start a local one.

    Joining passes no resource arguments (Ray refuses them when connecting). Outside a submitted
    job the repository is shipped as the job's working dir so cluster workers can import it; a
    local Ray instead gets the repository on its workers' PYTHONPATH (they start in the driver's
    cwd with only the script's folder on ``sys.path``). An object store's variables
    (`sweeps.storage.storage_env`: endpoint, credentials, region) go to a cluster's workers as the
    job's ``env_vars``; a local Ray's workers inherit them, and ``ray job submit`` passes its own
    (``--runtime-env-json '{"env_vars": ...}'``).
    """
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS", "")
        # Tune reuses a trial's actor only if the previous trial's thread ends within this many
        # seconds (Ray's default 2): on a loaded node it may not, and Ray 2.60 then lost the next
        # trial ("Could not re-use actor ... reset_config()"; it never ran). Read in the workers.
        os.environ.setdefault(THREAD_TIMEOUT_VAR, "30")
        env_vars = {THREAD_TIMEOUT_VAR: os.environ[THREAD_TIMEOUT_VAR]}
        try:
            if address:
                kwargs: dict[str, Any] = {}
                if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:  # not under `ray job submit`
                    # an object store's endpoint and credentials go to every worker too
                    kwargs["runtime_env"] = {"working_dir": REPO_ROOT, "env_vars": {**env_vars, **storage_env()},
                                             "excludes": ["runs/", "*.db", "mlruns/", "mlartifacts/",
                                                          "tests/fixtures/", "benchmarks/results/"]}
                ray.init(address=address, **kwargs)
            else:
                paths = [REPO_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
                os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
                ray.init(address="local", num_cpus=num_cpus or None, num_gpus=None if num_gpus < 0 else num_gpus,
                         include_dashboard=False)
        except Exception as exc:  # noqa: BLE001 - Ray's start-up errors come in many types; say what to do
            raise SweepValidationError(ray_start_failure(address, exc)) from None
    return dict(ray.cluster_resources())


def ray_start_failure(address: str, exc: BaseException) -> str:
    """One or two lines for a Ray that did not start or could not be joined (no traceback)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    if address:
        return (f"could not join the Ray cluster at {address}: {type(exc).__name__}: {first}; check the address, "
                "that the head is up, and RAY_AUTH_MODE / RAY_AUTH_TOKEN if the cluster uses token auth")
    return (f"a local Ray did not start: {type(exc).__name__}: {first}; on a loaded machine run again, give "
            "fewer --num-cpus, or start one with `ray start --head` and pass --address")


def check_resources(res: TrialResources) -> None:
    """Refuse a trial shape that no alive node can hold (trials would stay PENDING forever)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    memory = res.memory_gb * GB
    for node in nodes:
        have = node.get("Resources", {})
        if have.get("CPU", 0) >= res.cpu and have.get("GPU", 0) >= res.gpu and have.get("memory", 0) >= memory:
            return
    total = ray.cluster_resources()
    largest = max((n.get("Resources", {}).get("memory", 0) for n in nodes), default=0) / GB
    asked = f" and {res.memory_gb:g} GB memory" if res.memory_gb else ""
    raise SweepValidationError(
        f"no node of the Ray cluster can hold one trial of {res.cpu:g} CPU and {res.gpu:g} GPU{asked} "
        f"(cluster: {total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU over {len(nodes)} "
        f"node(s), the largest node's memory resource {largest:.1f} GB); lower --cpus-per-trial / "
        f"--gpus-per-trial / --memory-per-trial or add nodes")


def share_dataset(data: "MSADataset | DatasetRef") -> DatasetRef:
    """Put the dataset in the object store once (zero-copy NumPy reads in every trial)."""
    if isinstance(data, DatasetRef):
        return data
    return DatasetRef(ref=ray.put(data), name=data.name)
