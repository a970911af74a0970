"""Peak GPU memory of one training epoch per method and batch size (what ``--gpus-per-trial 0.25``
must leave room for).

    python benchmarks/bench_gpu_memory.py                                   # every method, batch 32 and 128
    python benchmarks/bench_gpu_memory.py --methods hscl,mmckd --batch-sizes 32,128 --text-encoder DIR \\
        --out benchmarks/results/gpu_memory.json

Each (method, batch size): `mmsa_core.trainer.train` for one epoch on synthetic MOSI cut to four
batches of training data (valid and test one batch each), ``device=cuda``, with and without bf16
autocast (``--amp-modes``); reported: ``torch.cuda.max_memory_allocated`` (tensors) and
``max_memory_reserved`` (what the caching allocator held, what other trials on the GPU lose) in MiB.
Without CUDA it writes ``{"available": false}`` and says so.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine, write_json  # noqa: E402


def main() -> int:
    from mmsa_core.methods import method_names

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default=",".join(method_names()), help="comma-separated (default: all)")
    p.add_argument("--batch-sizes", default="32,128", help="(default: 32,128)")
    p.add_argument("--text-encoder", default="minilm", help="minilm, tiny or a local directory (default: minilm)")
    p.add_argument("--amp-modes", default="fp32,bf16", help="fp32 and/or bf16 (default: both)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/gpu_memory.json)")
    args = p.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: peak GPU memory not measured")
        write_json("gpu_memory", {"available": False, "machine": machine(),
                                  "note": "no CUDA device on this machine: not measured"}, args.out)
        return 0
    from mmsa_core.config import RunConfig
    from mmsa_core.trainer import train

    rows = []
    for method in args.methods.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            for mode in args.amp_modes.split(","):
                cfg = RunConfig.paper(method, "mosi").replace(
                    text_encoder=args.text_encoder, batch_size=batch, max_epochs=1, device="cuda",
                    amp=(mode == "bf16"), synthetic_train=4 * batch, synthetic_valid=batch, synthetic_test=batch)
                gc.collect()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                train(cfg, progress=False)
                row = {"method": method, "batch_size": batch, "precision": mode,
                       "max_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                       "max_reserved_mib": round(torch.cuda.max_memory_reserved() / 2**20, 1)}
                rows.append(row)
                print(f"{method:15s} batch {batch:4d} {mode}: allocated {row['max_allocated_mib']:8.0f} MiB, "
                      f"reserved {row['max_reserved_mib']:8.0f} MiB", flush=True)
    write_json("gpu_memory", {"available": True, "machine": machine(), "text_encoder": args.text_encoder,
                              "rows": rows}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
