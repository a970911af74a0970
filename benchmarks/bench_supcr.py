"""Benchmark SupCR: the O((V·N)²) ``supcr_loss`` against the literal (V·N)³ ``supcr_loss_direct``.

Run from the repository root (either form):

    python -m benchmarks.bench_supcr                  # N = 32, 64, 128, 256, 512; V = 2, D = 128, float32, CPU
    python -m benchmarks.bench_supcr --quick          # N ≤ 128, fewer repeats
    python benchmarks/bench_supcr.py --device cuda    # on a GPU

It prints a table and writes JSON to ``benchmarks/results/supcr.json`` (``--out`` to change; the
folder is git-ignored).

What is measured, per (implementation, variant, N), each in a fresh subprocess so that nothing is
shared between measurements:

- time: median wall time of ``--repeats`` forward+backward passes, after one untimed pass;
- peak memory: on CPU, the increase of the process's peak resident set size (Linux ``VmHWM``,
  reset through ``/proc/self/clear_refs`` just before the first forward+backward) over its resident
  size at that moment — i.e. the extra RAM the loss and its backward really touched; on CUDA,
  ``torch.cuda.max_memory_allocated`` minus the memory allocated before the pass;
- ``|Δ|``: |loss(fast) − loss(direct)| on the same seeded inputs (labels on a 0.5 grid in [−3, 3],
  so that ties occur as in MOSI).

The direct form is skipped (and said so) where its estimated peak, (4·itemsize + 2) bytes per M³
element with M = V·N, exceeds ``--direct-cap-gib``. Torch runs single-threaded by default
(``--threads``): the development machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "supcr.json"
IMPLS = ("fast", "direct")


def _direct_bytes_estimate(m: int, itemsize: int) -> int:
    """Peak of the direct form: ~4 float M³ tensors (masked logits, exp, and their backward) + 2 bool masks."""
    return (4 * itemsize + 2) * m**3


# ----------------------------------------------------------------------------------------------
# worker: one measurement in its own process


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # "5" resets VmHWM to the current RSS (Linux ≥ 4.0)
        return True
    except OSError:
        return False


def _worker(args: argparse.Namespace) -> dict:
    import gc
    import resource

    import torch

    from mmsa_core.losses import supcr_loss, supcr_loss_direct

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    fn = supcr_loss if args.impl == "fast" else supcr_loss_direct
    gen = torch.Generator().manual_seed(args.seed)
    feats = torch.randn(args.n, args.views, args.dim, generator=gen, dtype=dtype).to(device)
    labels = (torch.randint(-6, 7, (args.n,), generator=gen) / 2).to(device=device, dtype=dtype)

    def step() -> float:
        f = feats.clone().requires_grad_(True)
        loss = fn(f, labels, args.tau, variant=args.variant)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return loss.item()

    # Warm-up on a tiny batch so lazy initialisation is not billed to the measured pass.
    fn(torch.randn(4, args.views, args.dim, dtype=dtype, device=device).requires_grad_(True),
       labels[:4] if args.n >= 4 else torch.zeros(4, dtype=dtype, device=device), args.tau,
       variant=args.variant).backward()
    gc.collect()

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        value = step()
        peak_bytes = torch.cuda.max_memory_allocated() - base
        mem_method = "cuda max_memory_allocated delta"
    elif _reset_peak_rss() and _rss_kib("VmRSS") is not None:
        base = _rss_kib("VmRSS")
        value = step()
        peak_bytes = (_rss_kib("VmHWM") - base) * 1024
        mem_method = "peak RSS delta (VmHWM reset via clear_refs)"
    else:  # no resettable high-water mark: ru_maxrss (never decreases) minus current RSS
        base = _rss_kib("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        value = step()
        peak_bytes = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024
        mem_method = "ru_maxrss delta (lower bound)"

    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"median_ms": 1000 * statistics.median(times), "times_ms": [1000 * t for t in times],
            "peak_mib": peak_bytes / 2**20, "loss": value, "memory_method": mem_method, "torch": torch.__version__}


# ----------------------------------------------------------------------------------------------
# driver


def _measure(args: argparse.Namespace, impl: str, variant: str, n: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_supcr", "--worker", "--impl", impl, "--variant", variant,
           "--n", str(n), "--views", str(args.views), "--dim", str(args.dim), "--dtype", args.dtype,
           "--tau", str(args.tau), "--repeats", str(args.repeats), "--threads", str(args.threads),
           "--device", args.device, "--seed", str(args.seed)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(x: float | None, spec: str) -> str:
    return format("-", ">" + spec.split(".")[0]) if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 32, 64, 128 and 2 repeats")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256, 512], help="batch sizes N")
    parser.add_argument("--variants", nargs="+", default=["intended", "hscl_code"], choices=["intended", "hscl_code"])
    parser.add_argument("--views", type=int, default=2, help="V")
    parser.add_argument("--dim", type=int, default=128, help="D")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--tau", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3, help="timed forward+backward passes (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--direct-cap-gib", type=float, default=4.0,
                        help="skip the direct form where its estimated peak memory exceeds this")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    # internal: one measurement in a subprocess
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=IMPLS, default="fast", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="intended", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    if args.quick:
        args.sizes = [n for n in args.sizes if n <= 128]
        args.repeats = min(args.repeats, 2)

    itemsize = 4 if args.dtype == "float32" else 8
    cap = args.direct_cap_gib * 2**30
    rows = []
    header = f"{'N':>5} {'M=VN':>5} {'variant':>9} {'impl':>6} {'median ms':>10} {'peak MiB':>9} {'loss':>9} {'|Δ|':>8}  note"
    print(f"SupCR forward+backward, V={args.views}, D={args.dim}, {args.dtype}, device={args.device}, "
          f"threads={args.threads}, median of {args.repeats}")
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        m = n * args.views
        for variant in args.variants:
            results = {}
            for impl in IMPLS:
                est = _direct_bytes_estimate(m, itemsize) if impl == "direct" else None
                row = {"n": n, "m": m, "views": args.views, "dim": args.dim, "variant": variant, "impl": impl,
                       "estimated_direct_gib": None if est is None else est / 2**30}
                if est is not None and est > cap:
                    row["skipped"] = (f"estimated {est / 2**30:.1f} GiB > cap {args.direct_cap_gib:g} GiB")
                else:
                    row.update(_measure(args, impl, variant, n))
                results[impl] = row
                rows.append(row)
            fast, direct = results["fast"], results["direct"]
            if "loss" in fast and "loss" in direct:
                fast["abs_diff_vs_direct"] = direct["abs_diff_vs_direct"] = abs(fast["loss"] - direct["loss"])
            for row in (fast, direct):
                note = row.get("skipped") or row.get("error") or ""
                print(f"{n:>5} {m:>5} {variant:>9} {row['impl']:>6} {_fmt(row.get('median_ms'), '10.1f')} "
                      f"{_fmt(row.get('peak_mib'), '9.1f')} {_fmt(row.get('loss'), '9.5f')} "
                      f"{_fmt(row.get('abs_diff_vs_direct'), '8.1e')}  {note}".rstrip(), flush=True)

    methods = {r["memory_method"] for r in rows if "memory_method" in r}
    payload = {
        "benchmark": "supcr_loss (O(M^2)) vs supcr_loss_direct (O(M^3)), forward+backward",
        "config": {k: v for k, v in vars(args).items() if k not in ("worker", "impl", "variant", "n", "out")},
        "memory_method": sorted(methods),
        "python": platform.python_version(), "platform": platform.platform(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"memory: {', '.join(sorted(methods))}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
