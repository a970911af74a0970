"""Peak resident memory (RSS) of one training run per method and text encoder, on the CPU.

    python benchmarks/bench_trial_memory.py                       # every method, tiny + minilm
    python benchmarks/bench_trial_memory.py --methods hscl,l1 --encoders tiny --epochs 1 \\
        --out benchmarks/results/trial_memory.json

Why: a sweep reserves Ray's ``memory`` resource per trial (``--memory-per-trial``) so that trials
that cannot fit in a node's memory together are not put on it together; its default per method and
encoder (`sweeps.runtime_options.MEASURED_PEAK_RSS_MB`) comes from this script's figures.

Each (method, encoder) is one ``python -m mmsa_core.train`` process (the method's paper preset,
its batch size, synthetic MOSI cut to ``--train-size`` / ``--eval-size`` samples (the
batch, the model and the optimiser set the peak, not the split sizes), ``--epochs`` epochs, ``--threads`` torch
threads); its peak RSS is the kernel's ``ru_maxrss`` of that child (``os.wait4``), so nothing of
this script's own memory is counted. A Ray worker adds its own runtime on top (not measured here:
the sweeps' default adds a margin).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mb(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(peak RSS in MiB, seconds, exit code) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        print(err[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024.0, time.perf_counter() - start, proc.returncode


def main() -> int:
    from mmsa_core.methods import method_names

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default=",".join(method_names()), help="comma-separated (default: all)")
    p.add_argument("--encoders", default="tiny,minilm", help="comma-separated (default: tiny,minilm)")
    p.add_argument("--epochs", type=int, default=1, help="(default: 1)")
    p.add_argument("--train-size", type=int, default=512, help="synthetic MOSI train samples (default: 512)")
    p.add_argument("--eval-size", type=int, default=128, help="valid and test samples each (default: 128)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/trial_memory.json)")
    args = p.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    rows = []
    for encoder in args.encoders.split(","):
        for method in args.methods.split(","):
            cmd = [sys.executable, "-m", "mmsa_core.train", "--method", method, "--text-encoder", encoder,
                   "--max-epochs", str(args.epochs), "--device", "cpu", "--quiet",
                   "--set", f"num_threads={args.threads}", "--set", f"synthetic_train={args.train_size}",
                   "--set", f"synthetic_valid={args.eval_size}", "--set", f"synthetic_test={args.eval_size}"]
            rss, seconds, code = peak_rss_mb(cmd, env)
            rows.append({"method": method, "encoder": encoder, "peak_rss_mb": round(rss, 1),
                         "seconds": round(seconds, 1), "exit_code": code})
            print(f"{method:15s} {encoder:7s} peak RSS {rss:7.0f} MiB  ({seconds:5.1f} s, exit {code})", flush=True)
    sizes = f"{args.train_size}/{args.eval_size}/{args.eval_size}"
    write_json("trial_memory", {"machine": machine(), "epochs": args.epochs, "threads": args.threads,
                                "data": f"synthetic-mosi ({sizes})", "runs": rows}, args.out)
    return 0 if all(r["exit_code"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
