"""Where trials run, without Ray: the GPU check, the device record's pieces, --memory-per-trial and
--num-gpus (the Ray side is tests/faults/test_placement_faults.py and tests/faults/test_two_nodes.py)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from mmsa_core.record_names import Tag
from sweeps.console import OneLineGpuFailures
from sweeps.placement import GpuUnavailableError, check_gpu, gpu_failure, node_history
from sweeps.runtime_options import (AUTO, MEASURED_PEAK_RSS_MB, MEMORY_MARGIN, RuntimeOptions, default_trial_memory_gb,
                                    placement_problem)
from tests.sweeps.conftest import REPO


def _no_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the no-CUDA path cannot be shown here")


def test_a_gpu_share_without_cuda_fails_at_once_unless_the_cpu_was_asked_for():
    _no_cuda()
    check_gpu("auto", 0.0)  # no GPU share: the CPU is what was asked
    check_gpu("cpu", 0.5)  # device=cpu set explicitly: the user's choice
    for device in ("auto", "cuda", "cuda:1"):
        with pytest.raises(GpuUnavailableError) as err:
            check_gpu(device, 0.5)
        text = str(err.value)
        assert "given 0.5 GPU (--gpus-per-trial) but finds no CUDA device" in text
        assert "--set device=cpu" in text and "CUDA build" in text


def test_the_driver_recognises_a_sweep_whose_every_trial_found_no_cuda():
    no_gpu = ("ray.exceptions.RayTaskError(GpuUnavailableError): ray::_trainable.train()\n  File x\n"
              "sweeps.placement.GpuUnavailableError: this trial was given 1 GPU (--gpus-per-trial) but ...")
    assert gpu_failure([no_gpu, no_gpu]).startswith("this trial was given 1 GPU")
    assert gpu_failure([no_gpu, "ValueError: something else"]) is None  # a mixed failure is not this one
    assert gpu_failure([no_gpu, None]) is None
    assert gpu_failure([]) is None


def test_tunes_traceback_of_a_no_cuda_trial_becomes_one_line():
    try:
        raise GpuUnavailableError("this trial was given 0.5 GPU (--gpus-per-trial) but finds no CUDA device")
    except GpuUnavailableError as exc:
        record = logging.LogRecord("ray.tune.execution.tune_controller", logging.ERROR, "f", 1,
                                   "Trial task failed for trial %s", ("t1",), (type(exc), exc, None))
    assert OneLineGpuFailures().filter(record) and record.exc_info is None
    assert record.getMessage() == ("Trial task failed for trial t1: this trial was given 0.5 GPU "
                                   "(--gpus-per-trial) but finds no CUDA device")
    other = logging.LogRecord("x", logging.ERROR, "f", 1, "m", (), (ValueError, ValueError("v"), None))
    assert OneLineGpuFailures().filter(other) and other.exc_info is not None  # others keep their traceback


def test_a_trials_nodes_are_kept_in_order():
    assert node_history("", "a") == "a"
    assert node_history("a", "a") == "a"  # a retry on the same node
    assert node_history("a", "b") == "a,b"
    assert node_history("a,b", "a") == "a,b,a"
    assert Tag.RAY_NODE_IDS != Tag.RAY_NODE_ID


def test_device_cuda_without_a_gpu_share_is_refused_before_any_trial(tmp_path):
    assert placement_problem("cuda", 0.0) and "--gpus-per-trial" in placement_problem("cuda:0", 0.0)
    assert placement_problem("cuda", 0.25) is None and placement_problem("auto", 0.0) is None
    out = subprocess.run([sys.executable, "sweeps/hscl.py", "--smoke", "--set", "device=cuda", "--storage-path",
                          str(tmp_path / "runs")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "device='cuda' needs --gpus-per-trial > 0" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()


def test_memory_per_trial_defaults_to_the_measured_peak_of_the_method_and_encoder():
    assert MEASURED_PEAK_RSS_MB, "the measured figures are missing"
    hscl_tiny = MEASURED_PEAK_RSS_MB[("hscl", "tiny")]
    auto = RuntimeOptions().trial_resources(("hscl",), "tiny")
    need = hscl_tiny * MEMORY_MARGIN / 1024
    assert need <= auto.memory_gb < need + 0.1
    # a grid of several methods reserves the largest; an encoder not measured twice the method's largest
    both = default_trial_memory_gb(("hscl", "mmckd"), "minilm")
    assert both == max(default_trial_memory_gb(("hscl",), "minilm"), default_trial_memory_gb(("mmckd",), "minilm"))
    assert default_trial_memory_gb(("hscl",), "/models/bert") > default_trial_memory_gb(("hscl",), "minilm")
    assert RuntimeOptions(memory_per_trial=3.5).trial_resources(("hscl",), "tiny").memory_gb == 3.5
    assert RuntimeOptions(memory_per_trial=0).trial_resources(("hscl",), "tiny").memory_gb == 0
    with pytest.raises(ValueError, match="memory_per_trial=-2"):
        RuntimeOptions(memory_per_trial=-2)


def test_memory_and_gpu_flags_on_the_command_line():
    from sweeps.cli import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["--memory-per-trial", "2.5", "--num-gpus", "2"]))
    assert cfg.runtime.memory_per_trial == 2.5 and cfg.runtime.num_gpus == 2
    cfg = config_from_args(build_parser().parse_args(["--memory-per-trial", "auto"]))
    assert cfg.runtime.memory_per_trial == AUTO
    out = subprocess.run([sys.executable, "sweeps/hscl.py", "--memory-per-trial", "lots"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--memory-per-trial" in out.stderr and "'lots'" in out.stderr
    assert "Traceback" not in out.stderr
    for entry in ("ablations/run.py", "ablations/compare.py", "ablations/robustness.py"):
        helped = subprocess.run([sys.executable, entry, "--help"], cwd=REPO, capture_output=True, text=True,
                                timeout=60)
        assert "--memory-per-trial" in helped.stdout and "--num-gpus" in helped.stdout, entry


def test_the_cpu_is_recorded_by_name_and_memory():
    from sweeps.placement import device_facts

    facts = device_facts("cpu")
    assert facts[Tag.TRAIN_DEVICE] == "cpu" and facts[Tag.TRAIN_DEVICE_NAME].startswith("CPU")
    assert float(facts[Tag.TRAIN_DEVICE_MEMORY_GB]) > 0.5


@pytest.mark.gpu
def test_a_gpu_share_with_cuda_passes_and_the_gpu_is_recorded():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from sweeps.placement import device_facts

    check_gpu("auto", 0.5)  # CUDA present: no error
    facts = device_facts("auto")
    assert facts[Tag.TRAIN_DEVICE] == f"cuda:{torch.cuda.current_device()}"
    assert facts[Tag.TRAIN_DEVICE_NAME] == torch.cuda.get_device_name(torch.cuda.current_device())
    assert float(facts[Tag.TRAIN_DEVICE_MEMORY_GB]) > 1


def test_a_trials_memory_becomes_rays_memory_resource_and_no_node_too_small_is_accepted(monkeypatch):
    """The trainable asks Ray for the trial's memory in bytes (so Ray co-schedules only trials that
    fit a node together), and a trial no node's memory resource can hold is refused before launch."""
    from sweeps import cluster
    from sweeps.config import TrackingTarget
    from sweeps.trial import TrialContext
    from sweeps.tune_objects import make_trainable

    resources = RuntimeOptions(memory_per_trial=1.5).trial_resources(("hscl",), "tiny")
    context = TrialContext(target=TrackingTarget("sqlite:////nowhere.db", "1", "p"), resources=resources)
    trainable = make_trainable(cluster.DatasetRef(ref=None, name="x"), context, resources)
    assert trainable.default_resource_request({}).required_resources["memory"] == int(1.5 * 1024**3)
    none = make_trainable(cluster.DatasetRef(ref=None, name="x"), context, RuntimeOptions(memory_per_trial=0).trial_resources())
    assert "memory" not in none.default_resource_request({}).required_resources

    nodes = [{"Alive": True, "Resources": {"CPU": 4.0, "memory": 1.0 * 1024**3}},
             {"Alive": True, "Resources": {"CPU": 1.0, "memory": 8.0 * 1024**3}}]
    monkeypatch.setattr(cluster.ray, "nodes", lambda: nodes)
    monkeypatch.setattr(cluster.ray, "cluster_resources", lambda: {"CPU": 5.0, "memory": 9.0 * 1024**3})
    cluster.check_resources(resources.__class__(cpu=1, memory_gb=1.5))  # the second node holds it
    with pytest.raises(cluster.SweepValidationError) as err:
        cluster.check_resources(resources.__class__(cpu=2, memory_gb=1.5))  # CPU on one, memory on the other
    assert "1 GPU" not in str(err.value) and "and 1.5 GB memory" in str(err.value)
    assert "largest node's memory resource 8.0 GB" in str(err.value) and "--memory-per-trial" in str(err.value)
