"""Where and how a sweep or a study runs: one definition of every such option, for every entry point.

`RuntimeOptions` is what none of the results depend on — storage, the MLflow store, the Ray
cluster, resources per trial, retries, time limits, console verbosity — so it may change when a
sweep or study is resumed (on other hardware, against another cluster). `add_runtime_arguments`
puts these options on a command line (``python sweeps/hscl.py``, ``ablations/run.py``,
``ablations/compare.py``, ``ablations/robustness.py``) with one name, one default and one help text
each; `RuntimeOptions.from_args` reads them back. Pure standard library.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from sweeps import storage  # standard library at import

DEFAULT_STORAGE = "runs/sweeps"
KEEP_CHECKPOINT_CHOICES = ("last", "none")
# MLflow tracking URIs the project accepts (MLflow's own schemes for a store it can reach)
TRACKING_SCHEMES = ("sqlite:///", "http://", "https://", "databricks", "postgresql://", "postgresql+",
                    "mysql://", "mysql+")
# what --optuna-storage takes besides a journal file: the database URLs Optuna's RDBStorage opens
OPTUNA_RDB_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+", "mysql://", "mysql+")


def resolve_tracking_uri(tracking_uri: str, storage_path: str) -> str:
    """`tracking_uri`, else $MLFLOW_TRACKING_URI, else ``sqlite:///<storage_path>/mlflow.db``.

    Always explicit (MLflow's implicit default flips to ./mlruns when one exists); sweeps and
    studies share this rule so that one store holds both by default. A storage URI has no default
    store (SQLite cannot live in a bucket): "" then, which `RuntimeOptions` refuses.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        if storage.is_uri(storage_path):
            return ""
        root = storage.resolve(storage_path)
        uri = "sqlite:///" + os.path.join(root, "mlflow.db")
    return uri


def gpu_fraction_problems(gpus: float, name: str = "gpus_per_trial") -> list[str]:
    """GPU shares must be whole GPUs or fractions that divide one GPU evenly (1/2, 1/3, 1/4, ...)."""
    if gpus < 0:
        return [f"{name}={gpus} must be >= 0"]
    if 0 < gpus < 1:
        k = round(1 / gpus)
        if not math.isclose(k * gpus, 1.0, rel_tol=1e-6):
            return [f"{name}={gpus} must divide one GPU evenly (1/k: 0.5, 0.25, ...)"]
    elif gpus > 1 and not float(gpus).is_integer():
        return [f"{name}={gpus} above 1 must be a whole number"]
    return []


# Peak resident memory (MiB) of one training run per (method, text encoder) on the CPU, each method's
# paper preset and batch size: benchmarks/bench_trial_memory.py, measured 2026-12-06 (README,
# "Benchmarks"). The default of --memory-per-trial is this x MEMORY_MARGIN (a Ray worker's own
# runtime, allocator slack); an encoder not measured (a local directory) gets the largest figure
# measured for the method times ENCODER_UNKNOWN_FACTOR.
MEASURED_PEAK_RSS_MB: dict[tuple[str, str], float] = {
    ("clfa", "tiny"): 756, ("hscl", "tiny"): 751, ("hycon", "tiny"): 740, ("l1", "tiny"): 755,
    ("mmckd", "tiny"): 1185, ("selfmm", "tiny"): 594, ("shared_private", "tiny"): 596,
    ("clfa", "minilm"): 1537, ("hscl", "minilm"): 1615, ("hycon", "minilm"): 1560, ("l1", "minilm"): 1592,
    ("mmckd", "minilm"): 3120, ("selfmm", "minilm"): 1128, ("shared_private", "minilm"): 1124,
}
MEMORY_MARGIN = 1.3
ENCODER_UNKNOWN_FACTOR = 2.0
AUTO = -1.0  # memory_per_trial: the measured default


def default_trial_memory_gb(methods: "tuple[str, ...] | list[str]", text_encoder: str) -> float:
    """The memory to reserve for one trial of any of `methods` with `text_encoder` (GB); 0 = unknown."""
    need = 0.0
    for method in methods:
        mb = MEASURED_PEAK_RSS_MB.get((method, text_encoder))
        if mb is None:
            known = [v for (m, _), v in MEASURED_PEAK_RSS_MB.items() if m == method]
            mb = max(known) * ENCODER_UNKNOWN_FACTOR if known else 0.0
        need = max(need, mb)
    return math.ceil(need * MEMORY_MARGIN / 1024 * 10) / 10  # GB, rounded up to 0.1


def placement_problem(device: str, gpus_per_trial: float) -> str | None:
    """A device setting that no trial can honour: ``device=cuda`` with no GPU share per trial."""
    if device.startswith("cuda") and gpus_per_trial <= 0:
        return (f"device={device!r} needs --gpus-per-trial > 0: a trial without a GPU share sees no GPU "
                "(Ray hides the others); give --gpus-per-trial, or leave device=auto")
    return None


@dataclass(frozen=True)
class TrialResources:
    """Resources of one trial. `gpu` may be a fraction (several trials share a GPU); `memory_gb` is
    Ray's logical ``memory`` resource (0 = none reserved), so trials that do not fit a node's memory
    together are not placed there together."""

    cpu: float = 1.0
    gpu: float = 0.0
    memory_gb: float = 0.0

    def __post_init__(self) -> None:
        problems = gpu_fraction_problems(self.gpu)
        if not self.cpu > 0:
            problems.append(f"cpu={self.cpu} must be > 0")
        if not (math.isfinite(self.memory_gb) and self.memory_gb >= 0):
            problems.append(f"memory_gb={self.memory_gb} must be >= 0")
        if problems:
            raise ValueError("invalid trial resources: " + "; ".join(problems))


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how trials run; none of it changes what is trained (validated on creation)."""

    storage_path: str = DEFAULT_STORAGE  # sweep / study directories: a shared folder or a URI (s3://...)
    tracking_uri: str = ""  # "" -> $MLFLOW_TRACKING_URI -> sqlite:///<storage_path>/mlflow.db
    address: str = ""  # Ray cluster; "" -> $RAY_ADDRESS -> start a local Ray
    num_cpus: int = 0  # CPUs of a local Ray (0 = all); ignored when joining a cluster
    num_gpus: int = -1  # GPUs of a local Ray (-1 = those it detects); ignored when joining a cluster
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions share a GPU; each trial's CUDA memory is capped to its share
    memory_per_trial: float = AUTO  # GB of Ray's memory resource per trial; AUTO = measured, 0 = none
    max_concurrent: int = 0  # trials at once (0 = as resources allow)
    max_failures: int = 2  # retries of a failed trial, each from its last checkpoint
    trial_timeout: float = 0.0  # seconds one trial attempt may run (a hang is stopped); 0 = no limit
    mlflow_wait: float = 600.0  # seconds a trial keeps trying MLflow at its start and end before it fails
    verbose: int = 1  # console: 0 summary, 1 a line per trial event, 2-3 also Ray Tune's own output
    keep_checkpoints: str = "last"  # once a sweep/study has finished: "last" per trial, or "none" (disk)
    inject_fault: str = ""  # testing only: see sweeps.faults.FaultSpec
    optuna_storage: str = ""  # sweeps: the Optuna study's journal file or RDB URL ("" = journal in the sweep dir)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid runtime options: " + "; ".join(problems))

    def problems(self) -> list[str]:
        p: list[str] = []
        if not self.storage_path:
            p.append("storage_path must not be empty")
        p += storage.uri_problems(self.storage_path)
        if storage.is_uri(self.storage_path) and not self.resolved_tracking_uri():
            p.append(f"--storage-path {self.storage_path} is a URI: pass --tracking-uri too (an MLflow server, a "
                     "database URL, or sqlite:///<absolute local path>; no SQLite store can live in a bucket)")
        if self.optuna_storage and storage.is_uri(self.optuna_storage) and not self.optuna_storage.startswith(
                OPTUNA_RDB_SCHEMES):
            p.append(f"--optuna-storage {self.optuna_storage}: expected a journal file on a local or shared POSIX "
                     "path, or a database URL (sqlite:///..., postgresql://..., mysql://...)")
        if self.num_cpus < 0:
            p.append(f"num_cpus={self.num_cpus} must be >= 0")
        if not self.cpus_per_trial > 0:
            p.append(f"cpus_per_trial={self.cpus_per_trial} must be > 0")
        if self.num_gpus < -1:
            p.append(f"num_gpus={self.num_gpus} must be >= 0 (-1 = detected)")
        p += gpu_fraction_problems(self.gpus_per_trial)
        if not (math.isfinite(self.memory_per_trial) and (self.memory_per_trial >= 0 or self.memory_per_trial == AUTO)):
            p.append(f"memory_per_trial={self.memory_per_trial} must be >= 0 GB (0 = none, auto = measured)")
        if self.max_concurrent < 0:
            p.append(f"max_concurrent={self.max_concurrent} must be >= 0 (0 = no limit)")
        if self.max_failures < 0:
            p.append(f"max_failures={self.max_failures} must be >= 0")
        if not (math.isfinite(self.trial_timeout) and self.trial_timeout >= 0):
            p.append(f"trial_timeout={self.trial_timeout} must be >= 0 seconds (0 = no limit)")
        if not (math.isfinite(self.mlflow_wait) and self.mlflow_wait >= 0):
            p.append(f"mlflow_wait={self.mlflow_wait} must be >= 0 seconds")
        if self.keep_checkpoints not in KEEP_CHECKPOINT_CHOICES:
            p.append(f"keep_checkpoints={self.keep_checkpoints!r} must be one of {list(KEEP_CHECKPOINT_CHOICES)}")
        if self.verbose not in (0, 1, 2, 3):
            p.append(f"verbose={self.verbose} must be 0, 1, 2 or 3")
        uri = self.tracking_uri
        if uri and not uri.startswith(TRACKING_SCHEMES):
            p.append(f"tracking_uri={uri!r}: use sqlite:///<absolute path>, http(s)://host:port, or a "
                     "database URL MLflow accepts (postgresql://..., mysql://...)")
        return p

    def replace(self, **changes: Any) -> "RuntimeOptions":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------------------------------
    @property
    def storage_root(self) -> str:
        """The storage path, absolute (a URI as given, `sweeps.storage`)."""
        return storage.resolve(self.storage_path)

    def resolved_tracking_uri(self) -> str:
        return resolve_tracking_uri(self.tracking_uri, self.storage_path)

    def resolved_address(self) -> str:
        return self.address or os.environ.get("RAY_ADDRESS", "")

    def trial_resources(self, methods: "tuple[str, ...] | list[str]" = (), text_encoder: str = "") -> TrialResources:
        """The shape of one trial; ``memory_per_trial=auto`` resolves to the measured default for the
        trials' methods and text encoder (`default_trial_memory_gb`)."""
        memory = self.memory_per_trial
        if memory == AUTO:
            memory = default_trial_memory_gb(methods, text_encoder) if methods else 0.0
        return TrialResources(cpu=self.cpus_per_trial, gpu=self.gpus_per_trial, memory_gb=memory)

    def describe(self) -> dict[str, Any]:
        """JSON-able, with any password in the tracking URI redacted."""
        from sweeps.preflight import redact_uri  # pure standard library

        return {**dataclasses.asdict(self), "tracking_uri": redact_uri(self.tracking_uri),
                "optuna_storage": redact_uri(self.optuna_storage)}

    @classmethod
    def from_args(cls, args: argparse.Namespace, base: "RuntimeOptions | None" = None) -> "RuntimeOptions":
        """The options a parser built by `add_runtime_arguments` read; unset flags keep `base`'s values."""
        base = base or cls()
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                 if getattr(args, f.name, None) is not None}
        return dataclasses.replace(base, **given)


def _memory_gb(text: str) -> float:
    """``auto`` or a number of GB (argparse names the option when this raises)."""
    if text.strip().lower() == "auto":
        return AUTO
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not 'auto' or a number of GB >= 0")
    return value


RUNTIME_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RuntimeOptions))


def add_runtime_arguments(parser: argparse.ArgumentParser, *, storage_help: str,
                          title: str = "where and how it runs (may change when resuming)") -> argparse._ArgumentGroup:
    """The runtime options as flags; every default is None, so `RuntimeOptions.from_args` can tell
    a flag given from one left out (an entry's own defaults, e.g. ``--smoke``'s, then apply)."""
    d = RuntimeOptions()
    g = parser.add_argument_group(title)
    g.add_argument("--storage-path", help=f"{storage_help}; a folder, or a URI such as s3://bucket/prefix or "
                                          f"gs://bucket/prefix (then --tracking-uri is required) "
                                          f"(default: ./{d.storage_path})")
    g.add_argument("--tracking-uri", help="MLflow store: sqlite:///<abs path>, http(s)://host:port or a "
                                          "database URL (default: $MLFLOW_TRACKING_URI, else "
                                          "sqlite:///<storage-path>/mlflow.db)")
    g.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else start a local Ray)")
    g.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: 0 = all)")
    g.add_argument("--num-gpus", type=int,
                   help="GPUs of a local Ray (default: those it detects); ignored with --address")
    g.add_argument("--cpus-per-trial", type=float, help=f"CPUs per trial (default: {d.cpus_per_trial:g})")
    g.add_argument("--gpus-per-trial", type=float,
                   help="GPUs per trial; 0.5, 0.25, ... share a GPU, each trial's CUDA memory capped "
                        f"to its share (default: {d.gpus_per_trial:g})")
    g.add_argument("--memory-per-trial", type=_memory_gb, metavar="GB",
                   help="memory Ray reserves per trial (its 'memory' resource), so trials that cannot fit "
                        "a node's memory together are not put there together; 0 = none (default: auto = "
                        "the measured peak of one run of the method with its text encoder, plus a margin)")
    g.add_argument("--max-concurrent", type=int, help="trials at once (default: 0 = as resources allow)")
    g.add_argument("--max-failures", type=int,
                   help=f"retries of a failed trial from its last checkpoint (default: {d.max_failures})")
    g.add_argument("--trial-timeout", type=float, metavar="SECONDS",
                   help="stop a trial attempt that runs longer than this (a hang); it is retried from its "
                        "checkpoint within --max-failures, then FAILED with the reason (default: 0 = no limit)")
    g.add_argument("--mlflow-wait", type=float, metavar="SECONDS",
                   help="how long a trial keeps trying an unreachable MLflow store when it starts and ends "
                        "before it fails (its checkpoint keeps the epochs; a resume replays them) "
                        f"(default: {d.mlflow_wait:g})")
    g.add_argument("--verbose", type=int, choices=(0, 1, 2, 3),
                   help="console output: 0 the summary only; 1 a line per trial event (started, new best, "
                        "stopped by ASHA / patience, finished, failed) and a header per stage; 2 and 3 also "
                        f"every epoch and Ray Tune's own trial tables (default: {d.verbose})")
    g.add_argument("--keep-checkpoints", choices=KEEP_CHECKPOINT_CHOICES,
                   help="what stays on disk once the sweep or study has finished: 'last' = each trial's "
                        "latest checkpoint (a later study can still evaluate its runs); 'none' = no "
                        "checkpoint (a sweep's best model is in MLflow first) (default: "
                        f"{d.keep_checkpoints})")
    g.add_argument("--inject-fault", help=argparse.SUPPRESS)  # tests: see sweeps.faults.FaultSpec
    return g
