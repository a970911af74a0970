"""What larger validation / test splits cost per epoch: the quickstart's trial at two split sizes.

    python benchmarks/bench_split_cost.py                       # 229/686 (CMU-MOSI's) vs 1536/1024 (the default)
    python benchmarks/bench_split_cost.py --sizes 229,686 1024,1024 2048,2048 --reps 5

The trial is the quickstart's: HSCL, tiny text encoder, one acoustic/visual layer, batch 32, synthetic
MOSI with 1284 training samples, one torch thread (a trial's share of a 2-core machine). Each
repetition trains ``--epochs`` epochs at every size, in an order rotated per repetition (so a slow
spell of a shared machine does not fall on one size), and keeps the mean seconds per epoch (training
and the validation and test evaluation every epoch does), after one untimed warm-up epoch. Printed and written to JSON
(``benchmarks/results/split_cost.json``): per size the mean ± std over repetitions, and each size's
ratio to the first with a 95 % t interval over the per-repetition ratios.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, _REPO)

from benchmarks._common import machine, write_json  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["229,686", "1536,1024"], help="VALID,TEST pairs; the first is the baseline")
    p.add_argument("--train", type=int, default=1284)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", default=None, help="JSON path (default benchmarks/results/split_cost.json)")
    args = p.parse_args()
    sizes = [tuple(int(x) for x in s.split(",")) for s in args.sizes]

    import torch
    from scipy import stats

    from mmsa_core.config import RunConfig
    from mmsa_core.data.dataset import load_dataset
    from mmsa_core.trainer import train

    torch.set_num_threads(1)
    data = {s: load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(args.train, *s)) for s in sizes}
    per_epoch: dict[tuple, list[float]] = {s: [] for s in sizes}
    warm = RunConfig.paper("hscl", text_encoder="tiny", av_layers=1, batch_size=32, max_epochs=1, num_threads=1,
                           device="cpu", synthetic_train=args.train, synthetic_valid=sizes[0][0],
                           synthetic_test=sizes[0][1])
    train(warm, data[sizes[0]], progress=False)  # untimed: first-call costs (allocator, kernels)
    for rep in range(args.reps):
        order = sizes[rep % len(sizes):] + sizes[: rep % len(sizes)]
        for s in order:
            cfg = RunConfig.paper("hscl", text_encoder="tiny", av_layers=1, batch_size=32, lr_text=1e-3,
                                  max_epochs=args.epochs, patience=args.epochs, num_threads=1, device="cpu",
                                  synthetic_train=args.train, synthetic_valid=s[0], synthetic_test=s[1], seed=1111)
            start = time.perf_counter()
            train(cfg, data[s], progress=False)
            per_epoch[s].append((time.perf_counter() - start) / args.epochs)
            print(f"rep {rep + 1}/{args.reps}: valid/test {s[0]}/{s[1]}: {per_epoch[s][-1]:.2f} s per epoch", flush=True)
    base = sizes[0]
    rows = []
    for s in sizes:
        ratios = [a / b for a, b in zip(per_epoch[s], per_epoch[base])]
        mean = statistics.fmean(ratios)
        half = (stats.t.ppf(0.975, len(ratios) - 1) * statistics.stdev(ratios) / math.sqrt(len(ratios))
                if len(ratios) > 1 else math.nan)
        rows.append({"valid": s[0], "test": s[1], "seconds_per_epoch": per_epoch[s],
                     "mean": statistics.fmean(per_epoch[s]),
                     "std": statistics.stdev(per_epoch[s]) if len(per_epoch[s]) > 1 else 0.0,
                     "ratio_to_first": mean, "ratio_ci95": [mean - half, mean + half]})
        print(f"valid/test {s[0]:>5}/{s[1]:<5} {rows[-1]['mean']:.2f} ± {rows[-1]['std']:.2f} s per epoch; "
              f"× {mean:.3f} [{mean - half:.3f}, {mean + half:.3f}] of {base[0]}/{base[1]}")
    write_json("split_cost", {"machine": machine(), "train": args.train, "epochs": args.epochs, "reps": args.reps,
                              "rows": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
