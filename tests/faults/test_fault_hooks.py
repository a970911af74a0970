"""The devices the fault matrix is built from, without Ray: the `FaultSpec` kinds and the
trial-timeout watchdog (fast). The scenarios themselves are the other modules here."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap

import pytest

from sweeps.faults import FaultSpec, InjectedFault
from tests.sweeps.conftest import REPO


def test_fault_kinds_parse_and_fire_once_per_claimed_trial(tmp_path):
    specs = FaultSpec.parse(f"trial=*,epoch=2,kind=enospc,marker={tmp_path}/a;"
                            f"trial=x,epoch=1,kind=hang,seconds=0,marker={tmp_path}/b;"
                            f"epoch=3,marker={tmp_path}/c")
    assert [s.kind for s in specs] == ["enospc", "hang", "raise"] and specs[1].seconds == 0
    with pytest.raises(ValueError, match="fault kind 'melt'"):
        FaultSpec.parse(f"kind=melt,marker={tmp_path}/d")
    enospc, hang, boom = specs
    enospc.inject("trial-1", 2)  # not an epoch-end fault: nothing happens
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    with pytest.raises(OSError) as info:
        enospc.inject_checkpoint_write("trial-1", 2, str(ckpt))
    assert info.value.errno == errno.ENOSPC and (ckpt / "partial.bin").exists()
    enospc.inject_checkpoint_write("trial-1", 2, str(ckpt))  # times=1: once only
    enospc.inject_checkpoint_write("trial-2", 2, str(ckpt))  # claimed by trial-1
    hang.inject("trial-x", 1)  # seconds=0: returns
    with pytest.raises(InjectedFault, match="trial-9 at epoch 3"):
        boom.inject("trial-9", 3)


def test_the_watchdog_tags_the_run_and_ends_the_process_when_time_is_up(tmp_path):
    """A process whose main thread hangs is ended by the watchdog (exit 1), which first tags the
    trial's MLflow run with the reason; a cancelled watchdog never fires."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    script = textwrap.dedent(f"""
        import sys, time
        from sweeps.tracking import Tracker
        from sweeps.trial import Watchdog
        t = Tracker({uri!r})
        exp = t.client.create_experiment("e")
        run_id = t.client.create_run(exp).info.run_id
        print(run_id, flush=True)
        quiet = Watchdog(0.2, {uri!r}, "k0")
        quiet.cancel()
        dog = Watchdog(1.5, {uri!r}, "k1")
        dog.run_id, dog.epoch = run_id, 3
        time.sleep(120)  # the hang
        sys.exit(0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "k1: trial timeout after 1.5 s" in proc.stderr and "k0" not in proc.stderr
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=uri).get_run(proc.stdout.split()[0])
    assert run.data.tags["timeout_reason"].startswith("trial timeout after 1.5 s (--trial-timeout; "
                                                      "attempt stopped after epoch 3")
