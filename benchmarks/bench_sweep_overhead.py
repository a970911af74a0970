"""What the sweep layer costs: the same trials through Ray Tune + MLflow vs. the trainer called
directly, and what running trials concurrently buys.

    python benchmarks/bench_sweep_overhead.py              # CPU: direct vs 1 vs 2 concurrent trials
    python benchmarks/bench_sweep_overhead.py --quickstart           # at the README quickstart's trial size
    python benchmarks/bench_sweep_overhead.py --skip-cpu --cpu-concurrency   # MiniLM trials 1, 2, 4 at a time
    python benchmarks/bench_sweep_overhead.py --gpu        # + 1, 2, 4 concurrent trials on one GPU

CPU part: `--trials` fixed HSCL configurations (tiny encoder, small synthetic MOSI, fixed epochs,
no early stopping, one torch thread each) are trained (a) by calling
`mmsa_core.trainer.train` in a loop in this process, (b) through `sweeps.grid.run_grid` —
the sweep's own trainable: object-store data, a checkpoint and one MLflow batch per epoch, Tune
reporting, driver-side statuses — with 1 CPU per trial and 1 trial at a time, (c) the same with 2
concurrent trials on 2 CPUs. Ray's start-up is timed separately (paid once per sweep).

Concurrency (`--cpu-concurrency` on the CPU, `--gpu` on one GPU, needs CUDA): `--concurrency-trials`
trials of `--concurrency-encoder` (MiniLM by default) on full-size synthetic MOSI, 1, 2 and 4 at a time
(CPU: 2 / k cores per trial; GPU: gpus_per_trial = 1, 0.5, 0.25, each trial's CUDA memory capped to its
share); reports samples/s inside each trial's epochs, in all, and trials per hour. Without a GPU the
JSON says so.

Prints a table and writes ``benchmarks/results/sweep_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, _REPO)

# Fixed points of the HSCL space (the paper's first): the same trials in every mode.
POINTS = [
    dict(omega1=0.01, omega2=0.1, alpha=0.1, tau=0.5),
    dict(omega1=0.1, omega2=0.05, alpha=0.3, tau=0.2),
    dict(omega1=0.003, omega2=0.3, alpha=0.03, tau=0.8),
    dict(omega1=0.05, omega2=0.01, alpha=0.5, tau=0.1),
    dict(omega1=0.02, omega2=0.2, alpha=0.05, tau=0.3),
    dict(omega1=0.2, omega2=0.02, alpha=0.2, tau=0.6),
    dict(omega1=0.005, omega2=0.5, alpha=0.01, tau=0.4),
    dict(omega1=0.5, omega2=0.005, alpha=0.8, tau=0.15),
]


def _configs(n: int, **base):
    from mmsa_core.config import RunConfig

    return [RunConfig(**base, seed=1111 + i // len(POINTS)).with_params(**POINTS[i % len(POINTS)])
            for i in range(n)]


def _grid(configs, *, data, tracker, experiment_id, root, name, cpu, gpu, concurrent):
    from sweeps.config import GridRun, TrackingTarget
    from sweeps.grid import run_grid
    from sweeps.runtime_options import RuntimeOptions

    parent = tracker.parent_run(experiment_id, name=name, kind="sweep", tags={"method": "hscl",
                                                                             "benchmark": "true"})
    target = TrackingTarget(tracking_uri=tracker.tracking_uri, experiment_id=experiment_id,
                            parent_run_id=parent, tags={"sweep_name": name, "method": "hscl"})
    runs = [GridRun(key=f"bench-{i}", config=c, tags={"stage": "benchmark"}) for i, c in enumerate(configs)]
    start = time.perf_counter()
    results = run_grid(runs, data=data, target=target, storage_path=os.path.join(root, name), name="grid",
                       runtime=RuntimeOptions(cpus_per_trial=cpu, gpus_per_trial=gpu, max_concurrent=concurrent,
                                              max_failures=0, verbose=0))
    wall = time.perf_counter() - start
    tracker.finish(parent, "FINISHED")
    bad = [r.key for r in results if r.status != "FINISHED"]
    if bad:
        raise RuntimeError(f"benchmark runs did not finish: {bad}")
    epoch_seconds = sum(m.value for r in results
                        for m in tracker.client.get_metric_history(r.run_id, "epoch_seconds"))
    return wall, epoch_seconds


def bench_cpu(args, root: str) -> dict:
    import ray

    from mmsa_core.trainer import load_run_data, train
    from sweeps.tracking import Tracker
    from sweeps.cluster import connect, share_dataset

    configs = _configs(args.trials, text_encoder="tiny", synthetic_train=args.train_size,
                       synthetic_valid=args.valid_size or args.train_size // 2,
                       synthetic_test=args.test_size or args.train_size // 2,
                       batch_size=32, max_epochs=args.epochs, patience=args.epochs, lr_text=1e-3,
                       av_layers=1, num_threads=1)
    data = load_run_data(configs[0])
    train(configs[0].replace(max_epochs=1), data, progress=False)  # warm-up: imports, kernels

    direct, direct_epochs = [], 0.0
    for cfg in configs:
        start = time.perf_counter()
        result = train(cfg, data, progress=False)
        direct.append(time.perf_counter() - start)
        direct_epochs += sum(r.seconds for r in result.history)
    direct_wall = sum(direct)

    start = time.perf_counter()
    connect(num_cpus=2)
    ray_start = time.perf_counter() - start
    shared = share_dataset(data)
    tracker = Tracker(f"sqlite:///{root}/mlflow.db")
    exp = tracker.experiment(data.name)
    walls, epochs = {}, {}
    for concurrent in (1, 2):
        walls[concurrent], epochs[concurrent] = _grid(configs, data=shared, tracker=tracker, experiment_id=exp, root=root,
                                  name=f"bench-c{concurrent}", cpu=1, gpu=0, concurrent=concurrent)
    ray.shutdown()
    n = len(configs)
    return {
        "trials": n, "epochs": args.epochs, "train_size": args.train_size, "encoder": "tiny",
        "direct_seconds": round(direct_wall, 2),
        "direct_seconds_per_trial": round(direct_wall / n, 2),
        "ray_start_seconds": round(ray_start, 2),
        "tune_mlflow_1_concurrent_seconds": round(walls[1], 2),
        "tune_mlflow_2_concurrent_seconds": round(walls[2], 2),
        "epoch_seconds_sum_direct": round(direct_epochs, 2),
        "epoch_seconds_sum_tune_1_concurrent": round(epochs[1], 2),
        "epoch_seconds_sum_tune_2_concurrent": round(epochs[2], 2),
        "overhead_seconds_per_trial": round((walls[1] - direct_wall) / n, 2),
        "overhead_fraction": round(walls[1] / direct_wall - 1, 3),
        "speedup_2_vs_1_concurrent": round(walls[1] / walls[2], 2),
        "speedup_2_concurrent_vs_direct": round(direct_wall / walls[2], 2),
    }


def bench_concurrency(args, root: str, device: str) -> dict:
    """Trials of `args.concurrency_encoder` 1, 2 and 4 at a time: on the CPU (2 / k CPUs each) or on
    one GPU (1 / k of it each, CUDA memory capped to that share): samples/s per trial, trials/hour."""
    import torch

    if device == "gpu" and not torch.cuda.is_available():
        return {"available": False,
                "note": "no CUDA device on this machine: trials per hour on one GPU were not measured; "
                        "run `python benchmarks/bench_sweep_overhead.py --gpu` on a GPU node"}
    import ray

    from mmsa_core.trainer import load_run_data
    from sweeps.tracking import Tracker
    from sweeps.cluster import connect, share_dataset

    epochs = args.concurrency_epochs
    cpus_total = os.cpu_count() or 2
    configs = _configs(args.concurrency_trials, text_encoder=args.concurrency_encoder, max_epochs=epochs,
                       patience=epochs, device="cuda" if device == "gpu" else "cpu")
    data = load_run_data(configs[0])
    connect(num_cpus=cpus_total)
    shared = share_dataset(data)
    tracker = Tracker(f"sqlite:///{root}/mlflow-{device}.db")
    exp = tracker.experiment(data.name)
    train_n = data.sizes["train"]
    out = {"available": True, "device": torch.cuda.get_device_name(0) if device == "gpu" else f"{cpus_total} CPU cores",
           "trials": len(configs), "epochs": epochs, "encoder": args.concurrency_encoder, "sizes": data.sizes,
           "by_concurrency": {}}
    for k in (1, 2, 4):
        cpu = max(1, cpus_total // 4) if device == "gpu" else cpus_total / k
        wall, epoch_seconds = _grid(configs, data=shared, tracker=tracker, experiment_id=exp, root=root,
                                    name=f"{device}-c{k}", cpu=cpu, gpu=1 / k if device == "gpu" else 0,
                                    concurrent=k)
        per_trial = train_n * epochs * len(configs) / epoch_seconds  # samples/s inside one trial's epochs
        out["by_concurrency"][str(k)] = {
            "cpus_per_trial": cpu, "gpus_per_trial": 1 / k if device == "gpu" else 0, "seconds": round(wall, 1),
            "samples_per_s_per_trial": round(per_trial, 1),
            "samples_per_s_all_trials": round(train_n * epochs * len(configs) / wall, 1),
            "trials_per_hour": round(len(configs) / wall * 3600, 1),
            "trials_per_hour_20_epochs": round(len(configs) / wall * 3600 * epochs / 20, 2)}
    ray.shutdown()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=4, help="CPU trials per mode (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=4, help="(default: %(default)s)")
    p.add_argument("--train-size", type=int, default=512, help="synthetic train samples (default: %(default)s)")
    p.add_argument("--valid-size", type=int, default=0, help="(default: train size / 2)")
    p.add_argument("--test-size", type=int, default=0, help="(default: train size / 2)")
    p.add_argument("--quickstart", action="store_true",
                   help="the README quickstart's trial: synthetic MOSI 1284/1536/1024, 8 epochs (tiny encoder)")
    p.add_argument("--gpu", action="store_true", help="also measure 1/2/4 concurrent trials on one GPU")
    p.add_argument("--cpu-concurrency", action="store_true",
                   help="also measure 1/2/4 concurrent trials of --concurrency-encoder on the CPU")
    p.add_argument("--concurrency-trials", type=int, default=4, help="(default: %(default)s)")
    p.add_argument("--concurrency-epochs", type=int, default=1, help="(default: %(default)s)")
    p.add_argument("--concurrency-encoder", default="minilm", help="(default: %(default)s)")
    p.add_argument("--skip-cpu", action="store_true", help="skip the overhead measurement")
    p.add_argument("--output", default=os.path.join(_REPO, "benchmarks", "results", "sweep_overhead.json"))
    args = p.parse_args()
    if args.quickstart:  # scripts/quickstart.sh: --data synthetic-mosi (its sizes) --max-epochs 8
        args.train_size, args.valid_size, args.test_size, args.epochs = 1284, 1536, 1024, 8
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import torch

    report: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "python": platform.python_version(), "torch": torch.__version__,
                                "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as root:
        if not args.skip_cpu:
            report["cpu"] = bench_cpu(args, root)
        if args.cpu_concurrency:
            report["cpu_concurrency"] = bench_concurrency(args, root, "cpu")
        report["gpu"] = bench_concurrency(args, root, "gpu") if args.gpu else {
            "available": torch.cuda.is_available(),
            "note": ("not run (pass --gpu)" if torch.cuda.is_available() else
                     "no CUDA device on this machine: trials per hour on one GPU were not measured; "
                     "run `python benchmarks/bench_sweep_overhead.py --gpu` on a GPU node")}

    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if "cpu" in report:
        c = report["cpu"]
        print(f"\nsweep-layer overhead, {c['trials']} trials x {c['epochs']} epochs "
              f"(tiny encoder, {c['train_size']} train samples), 2 CPU cores:")
        print(f"  direct trainer calls          {c['direct_seconds']:8.1f} s  ({c['direct_seconds_per_trial']:.1f} s/trial)")
        print(f"  Ray start (once per sweep)    {c['ray_start_seconds']:8.1f} s")
        print(f"  Ray Tune + MLflow, 1 at once  {c['tune_mlflow_1_concurrent_seconds']:8.1f} s  "
              f"(+{c['overhead_seconds_per_trial']:.1f} s/trial, +{100 * c['overhead_fraction']:.0f}%)")
        print(f"  Ray Tune + MLflow, 2 at once  {c['tune_mlflow_2_concurrent_seconds']:8.1f} s  "
              f"(x{c['speedup_2_vs_1_concurrent']:.2f} vs 1 at once, x{c['speedup_2_concurrent_vs_direct']:.2f} vs direct)")
        print(f"  time inside epochs (sum)      direct {c['epoch_seconds_sum_direct']:.1f} s, 1 at once "
              f"{c['epoch_seconds_sum_tune_1_concurrent']:.1f} s, 2 at once {c['epoch_seconds_sum_tune_2_concurrent']:.1f} s")
        print(f"  load average start/end        {report['machine']['load_average_at_start'][0]} / "
              f"{report['machine']['load_average_at_end'][0]} (other processes share these cores)")
    for key in ("cpu_concurrency", "gpu"):
        g = report.get(key)
        if g and g.get("by_concurrency"):
            print(f"{g['device']}, {g['trials']} trials x {g['epochs']} epochs, {g['encoder']}, sizes {g['sizes']}:")
            for k, v in g["by_concurrency"].items():
                print(f"  {k} concurrent: {v['samples_per_s_per_trial']:.1f} samples/s per trial, "
                      f"{v['samples_per_s_all_trials']:.1f} in all, {v['trials_per_hour']:.0f} trials/hour "
                      f"({v['trials_per_hour_20_epochs']:.1f} of 20 epochs; {v['seconds']:.0f} s)")
        elif g:
            print(f"GPU: {g['note']}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
