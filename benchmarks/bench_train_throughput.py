"""Training throughput (samples/s) of the HSCL core: optimiser steps on full batches.

    python benchmarks/bench_train_throughput.py                 # MiniLM, batch 32, synthetic MOSI
    python benchmarks/bench_train_throughput.py --data path/to/mosi_utt.pkl   # real MOSI, docs/DATA.md

Each row: warm-up steps, then timed steps of forward + all HSCL losses + backward + Adam + clip,
exactly the trainer's step (`mmsa_core.trainer`). Both encoders are measured in the same run so
their ratio is side by side on the same (noisy) machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

try:  # `python benchmarks/x.py` and `python -m benchmarks.x` both work
    from benchmarks._common import machine, write_json
except ImportError:
    from _common import machine, write_json


def measure(encoder: str, data_source: str, batch_size: int, steps: int, warmup: int, device: str) -> dict:
    import torch

    from mmsa_core.config import RunConfig
    from mmsa_core.data import load_dataset
    from mmsa_core.data.batching import make_loader
    from mmsa_core.methods.runtime import build_runtime
    from mmsa_core.trainer import build_optimizer, prepare_batch, resolve_device

    cfg = RunConfig(text_encoder=encoder, data=data_source, batch_size=batch_size, device=device)
    data = load_dataset(data_source, text_encoder=encoder)
    dev = resolve_device(device)
    torch.manual_seed(0)
    runtime = build_runtime(cfg, data, dev)
    model = runtime.model.train()
    opt = build_optimizer(cfg, runtime)
    batches = list(make_loader(data.splits["train"], batch_size=batch_size, shuffle=True, seed=0))
    batches = [b for b in batches if b.labels.shape[0] == batch_size]
    times = []
    for i in range(warmup + steps):
        b = batches[i % len(batches)]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = runtime.total_loss(runtime.training_terms(prepare_batch(b, dev, runtime.trim_padding), epoch=1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    mean_tokens = float(data.splits["train"].text_mask.sum(1).mean())
    return {"encoder": encoder, "data": data.name, "batch_size": batch_size, "steps": steps,
            "median_step_s": median, "samples_per_s": batch_size / median,
            "mean_text_tokens": mean_tokens,
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic-mosi")
    p.add_argument("--encoders", default="minilm,tiny")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    rows = [measure(e, args.data, args.batch_size, args.steps, args.warmup, args.device)
            for e in args.encoders.split(",")]
    print(f"{'encoder':<8} {'data':<16} {'batch':>5} {'params':>11} {'tokens':>7} {'step s':>8} {'samples/s':>10}")
    for r in rows:
        print(f"{r['encoder']:<8} {r['data']:<16} {r['batch_size']:>5} {r['parameters']:>11,} "
              f"{r['mean_text_tokens']:>7.1f} {r['median_step_s']:>8.3f} {r['samples_per_s']:>10.1f}")
    write_json("train_throughput", {"machine": machine(), "rows": rows}, args.out)


if __name__ == "__main__":
    main()
