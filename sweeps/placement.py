"""Where a trial really trains: the GPU check at its start and the record of its device and node.

Why a module of its own: a trial given a GPU share by Ray that finds no CUDA (a CPU build of torch
on the workers, a driver mismatch) would otherwise train on the CPU under ``device=auto`` without a
word, hours slower, while MLflow says only ``device=auto``. So the trial fails at once
(`GpuUnavailableError`, unless the configuration says ``device=cpu``), and every run records the
device it trained on and its node (`placement_tags`). Runs in the Ray workers; imports torch and
Ray inside functions only.
"""

from __future__ import annotations

import os
import socket

from mmsa_core.record_names import Tag

GPU_UNAVAILABLE = "GpuUnavailableError"  # the class name the driver looks for in a trial's error


class GpuUnavailableError(RuntimeError):
    """A trial was given a GPU share but its process finds no CUDA device (raised before training)."""


def check_gpu(device: str, gpus_per_trial: float) -> None:
    """Raise `GpuUnavailableError` when this trial holds a GPU share that torch cannot use.

    ``device=cpu`` set explicitly is the user's choice (train on the CPU while holding the share),
    so it passes; ``auto`` and ``cuda*`` need CUDA.
    """
    if gpus_per_trial <= 0 or device == "cpu":
        return
    import torch

    if torch.cuda.is_available():
        return
    build = torch.version.cuda or "none (a CPU build)"
    raise GpuUnavailableError(
        f"this trial was given {gpus_per_trial:g} GPU (--gpus-per-trial) but finds no CUDA device on node "
        f"{socket.gethostname()} (torch {torch.__version__}, CUDA build {build}, CUDA_VISIBLE_DEVICES="
        f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}): install a CUDA build of torch on the "
        f"workers, or pass --set device=cpu to train on the CPU anyway")


def gpu_failure(errors: "list[BaseException | str | None]") -> str | None:
    """The `GpuUnavailableError` message when every one of `errors` (the failed trials' errors, as
    Tune hands them to the driver) is one, else None: then the sweep as asked cannot run here."""
    messages = []
    for error in errors:
        text = str(error or "")
        lines = [line for line in text.splitlines() if f"{GPU_UNAVAILABLE}: " in line]
        if lines:  # Ray's wrapped error: the traceback's last line names the class
            messages.append(lines[-1].split(f"{GPU_UNAVAILABLE}: ", 1)[1].strip())
        elif isinstance(error, GpuUnavailableError):
            messages.append(text.strip())
        else:
            return None
    return messages[0] if messages else None


def device_facts(device: str) -> dict[str, str]:
    """The device a configuration's ``device`` resolves to here: its name and memory (no Ray)."""
    import torch

    from mmsa_core.trainer import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        index = resolved.index if resolved.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return {Tag.TRAIN_DEVICE: f"cuda:{index}", Tag.TRAIN_DEVICE_NAME: props.name,
                Tag.TRAIN_DEVICE_MEMORY_GB: f"{props.total_memory / 1024**3:.1f}"}
    return {Tag.TRAIN_DEVICE: str(resolved), Tag.TRAIN_DEVICE_NAME: _cpu_name(),
            Tag.TRAIN_DEVICE_MEMORY_GB: f"{_host_memory_gb():.1f}"}


def placement_tags(device: str) -> dict[str, str]:
    """What the trial trains on and where (`device_facts`), plus the host, the Ray node and the GPUs
    Ray assigned (``CUDA_VISIBLE_DEVICES`` as this process sees it). Inside a Ray worker."""
    import ray

    context = ray.get_runtime_context()
    gpu_ids = context.get_accelerator_ids().get("GPU", [])
    return {**device_facts(device), Tag.NODE_HOSTNAME: socket.gethostname(),
            Tag.RAY_NODE_ID: context.get_node_id(), Tag.RAY_GPU_IDS: ",".join(str(g) for g in gpu_ids),
            Tag.CUDA_VISIBLE_DEVICES: os.environ.get("CUDA_VISIBLE_DEVICES", "")}


def node_history(previous: str, node_id: str) -> str:
    """The Ray node ids of a trial's attempts, in order, comma-separated (a resumed trial that moved
    to another node keeps the first node in its record)."""
    nodes = [n for n in previous.split(",") if n]
    if not nodes or nodes[-1] != node_id:
        nodes.append(node_id)
    return ",".join(nodes)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return "CPU: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return "CPU: " + (platform.processor() or platform.machine())


def _host_memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        return 0.0
