"""The names in a run's record: metric keys and tag keys, built and parsed in one place.

Why a module of its own: the trainer writes these names, the sweeps and studies tag runs with them,
and the reports read them back from MLflow; a name built in one place and parsed in another drifts.
Standard library only, so that every layer (the reports too, which read nothing but MLflow) can
import it without pulling in torch, Ray or MLflow.

Metrics (one value per epoch, ``step`` = epoch):
    ``train/<term>``, ``valid/<m>``, ``test/<m>``   `epoch_metric(split, m)`
    ``best/valid/<m>``, ``best/test/<m>``           `best_metric(split, m)` — at the best validation epoch
    ``best_epoch``, ``epochs_run``, ``lr``, ``epoch_seconds``
Test-time robustness (logged once, after training, at step = ``epochs_run``):
    ``robust/<kind>-<modalities>/r<rate:.2f>/test/<m>``   `robust_metric` (kinds frames, stream, tokens)
    ``robust/absent-<modalities>/test/<m>``               whole streams absent (no rate)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# --- metrics ----------------------------------------------------------------------------------
SPLITS = ("train", "valid", "test")
# regression_metrics' keys (mmsa_core.metrics), in the field's order
REGRESSION_METRICS = ("mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0")
BEST_EPOCH = "best_epoch"
EPOCHS_RUN = "epochs_run"
LEARNING_RATE = "lr"
EPOCH_SECONDS = "epoch_seconds"
TRAIN_LOSS = "train/loss"
ABSENT_KIND = "absent"  # robustness: whole streams absent at test time (no rate)
ROBUST_ROOT = "robust"


def epoch_metric(split: str, metric: str) -> str:
    """``valid/mae``: `metric` of this epoch on `split` (``train/<term>`` for loss terms)."""
    return f"{split}/{metric}"


def best_metric(split: str, metric: str) -> str:
    """``best/test/mae``: `metric` on `split` at the best validation epoch so far."""
    return f"best/{split}/{metric}"


def best_metrics(split: str, metrics: dict[str, float]) -> dict[str, float]:
    """``{best/<split>/<m>: value}`` of a metrics dict (what a finished run's summary carries)."""
    return {best_metric(split, k): v for k, v in metrics.items()}


def strip_best(split: str, metrics: dict[str, float]) -> dict[str, float]:
    """The inverse of `best_metrics`: ``{m: value}`` of every ``best/<split>/<m>`` key."""
    prefix = best_metric(split, "")
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}


def corruption_name(kind: str, modalities: str, rate: float | None) -> str:
    """``tokens-tav/r0.30`` (or ``absent-av``, which has no rate): one test-time setting."""
    return f"{kind}-{modalities}" if rate is None else f"{kind}-{modalities}/r{rate:.2f}"


def robust_prefix(kind: str, modalities: str, rate: float | None) -> str:
    """``robust/tokens-tav/r0.30/test/``: the prefix of every metric of one test-time setting."""
    return f"{ROBUST_ROOT}/{corruption_name(kind, modalities, rate)}/test/"


def robust_metric(kind: str, modalities: str, rate: float | None, metric: str) -> str:
    return robust_prefix(kind, modalities, rate) + metric


@dataclass(frozen=True)
class RobustKey:
    """A parsed robustness metric name."""

    kind: str  # frames | stream | tokens | absent
    modalities: str  # "a", "av", "tav", ...
    rate: float | None  # None for absent streams
    metric: str

    @property
    def setting(self) -> str:
        """``tokens-tav`` — the corruption without its rate (one curve of a robustness plot)."""
        return f"{self.kind}-{self.modalities}"


_ROBUST_RE = re.compile(r"^robust/(?P<kind>[a-z]+)-(?P<mods>[a-z]+)(?:/r(?P<rate>\d+(?:\.\d+)?))?/test/(?P<metric>\w+)$")


def parse_robust_metric(key: str) -> RobustKey | None:
    """`RobustKey` of ``robust/...`` metric `key` (an MLflow ``metrics.`` prefix is allowed); else None."""
    key = key[len("metrics."):] if key.startswith("metrics.") else key
    m = _ROBUST_RE.match(key)
    if m is None:
        return None
    rate = m.group("rate")
    if (rate is None) != (m.group("kind") == ABSENT_KIND):
        return None  # a rate on absent streams, or none on a rated kind: not a name we write
    return RobustKey(m.group("kind"), m.group("mods"), None if rate is None else float(rate), m.group("metric"))


# --- tags ---------------------------------------------------------------------------------------
class Tag:
    """Tag keys of parent and child runs (docs/ARCHITECTURE.md, "MLflow contract")."""

    KIND = "kind"  # parent: sweep | ablation | robustness | comparison
    NAME = "sweep_name"  # the sweep's or study's name, on the parent and every child
    STAGE = "stage"  # child: search | rerank | final | ablation | robustness | single | superseded
    RUN_KEY = "run_key"  # child: unique under its parent (how a resumed trial finds its run)
    METHOD = "method"
    METHODS = "methods"
    DATASET = "dataset"
    DATASET_DIGEST = "dataset_digest"
    SEED = "seed"
    SEEDS = "seeds"
    TRIAL_ID = "trial_id"
    SOURCE_TRIAL_ID = "source_trial_id"  # rerank child: the search trial whose configuration it retrains
    BEST_TRIAL_ID = "best_trial_id"  # sweep parent: the selected configuration's search trial
    SEARCH_BEST_TRIAL_ID = "search_best_trial_id"  # sweep parent: the search's best trial (before re-ranking)
    ABLATION = "ablation"  # the variant's name (ablation children)
    REFERENCE = "reference"  # "true" on the reference variant's runs
    PROTOCOL = "protocol"  # robustness: evaluate | retrain
    RATE = "rate"  # robustness, retrain protocol: the rate its data were masked at
    RATES = "rates"
    MASK_SEEDS = "mask_seeds"
    BASE_SWEEP = "base_sweep"
    CONFIG_HASH = "config_hash"
    CODE_VERSION = "code_version"
    SUPERSEDED_STAGE = "superseded_stage"  # stage=superseded runs: the stage they were (an extension's new winner)
    SUPERSEDED_BY = "superseded_by"  # ... and the search trial whose runs replaced them
    STOPPED_EARLY = "stopped_early"
    STOP_REASON = "stop_reason"
    ERROR = "error"
    KILLED_REASON = "killed_reason"
    RESUMED_FROM_EPOCH = "resumed_from_epoch"
    RETRAINED_EPOCHS = "retrained_epochs"
    TIMEOUT_REASON = "timeout_reason"
    # where a trial trained (sweeps.placement), set by every attempt
    TRAIN_DEVICE = "train_device"  # the resolved torch device: cpu, cuda:0, ...
    TRAIN_DEVICE_NAME = "train_device_name"  # GPU name, or "CPU: <model>"
    TRAIN_DEVICE_MEMORY_GB = "train_device_memory_gb"  # the GPU's total memory, or the host's
    NODE_HOSTNAME = "node_hostname"
    RAY_NODE_ID = "ray_node_id"  # the node of the latest attempt
    RAY_NODE_IDS = "ray_node_ids"  # every attempt's node, in order, comma-separated
    RAY_GPU_IDS = "ray_gpu_ids"  # the GPU ids Ray assigned the trial, comma-separated
    CUDA_VISIBLE_DEVICES = "cuda_visible_devices"  # as the trial's process saw it


def rate_tag(rate: float) -> str:
    """``0.30``: a rate as tags and metric names write it (two decimals)."""
    return f"{rate:.2f}"


def bool_tag(value: bool) -> str:
    return "true" if value else "false"
