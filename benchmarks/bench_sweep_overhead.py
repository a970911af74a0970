"""What the sweep layer costs: the same trials through Ray Tune + MLflow vs. the trainer called
directly, and what running trials concurrently buys.

    python benchmarks/bench_sweep_overhead.py              # CPU: direct vs 1 vs 2 concurrent trials
    python benchmarks/bench_sweep_overhead.py --gpu        # + 1, 2, 4 concurrent trials on one GPU

CPU part: `--trials` fixed HSCL configurations (tiny encoder, small synthetic MOSI, fixed epochs,
no early stopping, one torch thread each) are trained (a) by calling
`mmsa_core.trainer.train` in a loop in this process, (b) through `sweeps.tune_runner.run_grid` —
the sweep's own trainable: object-store data, a checkpoint and one MLflow batch per epoch, Tune
reporting, driver-side statuses — with 1 CPU per trial and 1 trial at a time, (c) the same with 2
concurrent trials on 2 CPUs. Ray's start-up is timed separately (paid once per sweep).

GPU part (`--gpu`, needs CUDA): `--gpu-trials` trials with the MiniLM encoder on full-size synthetic
MOSI, 1, 2 and 4 at a time on one GPU (gpus_per_trial = 1, 0.5, 0.25, each trial's CUDA memory
capped to its share); reports trials per hour. Without a GPU the JSON says so.

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
    from sweeps.config import GridRun, TrackingTarget, TrialResources
    from sweeps.tune_runner import run_grid

    parent = tracker.parent_run(experiment_id, name=name, kind="sweep", tags={"method": "hscl",
                                                                             "benchmark": "true"})
    target = TrackingTarget(tracking_uri=tracker.tracking_uri, experiment_id=experiment_id,
                            parent_run_id=parent, tags={"sweep_name": name, "method": "hscl"})
    runs = [GridRun(key=f"bench-{i}", config=c, tags={"stage": "benchmark"}) for i, c in enumerate(configs)]
    start = time.perf_counter()
    results = run_grid(runs, data=data, target=target, storage_path=os.path.join(root, name), name="grid",
                       resources=TrialResources(cpu=cpu, gpu=gpu), max_concurrent=concurrent,
                       max_failures=0, verbose=0)
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
    from sweeps.tune_runner import connect, share_dataset

    configs = _configs(args.trials, text_encoder="tiny", synthetic_train=args.train_size,
                       synthetic_valid=args.train_size // 2, synthetic_test=args.train_size // 2,
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


def bench_gpu(args, root: str) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"available": False,
                "note": "no CUDA device on this machine: trials per hour on one GPU were not measured; "
                        "run `python benchmarks/bench_sweep_overhead.py --gpu` on a GPU node"}
    import ray

    from mmsa_core.trainer import load_run_data
    from sweeps.tracking import Tracker
    from sweeps.tune_runner import connect, share_dataset

    configs = _configs(args.gpu_trials, text_encoder=args.gpu_encoder, max_epochs=args.gpu_epochs,
                       patience=args.gpu_epochs)
    data = load_run_data(configs[0])
    connect(num_cpus=os.cpu_count())
    shared = share_dataset(data)
    tracker = Tracker(f"sqlite:///{root}/mlflow-gpu.db")
    exp = tracker.experiment(data.name)
    cpus = max(1, (os.cpu_count() or 4) // 4)
    out = {"available": True, "device": torch.cuda.get_device_name(0), "trials": len(configs),
           "epochs": args.gpu_epochs, "encoder": args.gpu_encoder, "sizes": data.sizes,
           "cpus_per_trial": cpus, "by_concurrency": {}}
    for k in (1, 2, 4):
        wall, _ = _grid(configs, data=shared, tracker=tracker, experiment_id=exp, root=root,
                        name=f"gpu-c{k}", cpu=cpus, gpu=1 / k, concurrent=k)
        out["by_concurrency"][str(k)] = {"gpus_per_trial": 1 / k, "seconds": round(wall, 1),
                                         "trials_per_hour": round(len(configs) / wall * 3600, 1)}
    ray.shutdown()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=4, help="CPU trials per mode (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=4, help="(default: %(default)s)")
    p.add_argument("--train-size", type=int, default=512, help="synthetic train samples (default: %(default)s)")
    p.add_argument("--gpu", action="store_true", help="also measure 1/2/4 concurrent trials on one GPU")
    p.add_argument("--gpu-trials", type=int, default=8, help="(default: %(default)s)")
    p.add_argument("--gpu-epochs", type=int, default=3, help="(default: %(default)s)")
    p.add_argument("--gpu-encoder", default="minilm", help="(default: %(default)s)")
    p.add_argument("--skip-cpu", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--output", default=os.path.join(_REPO, "benchmarks", "results", "sweep_overhead.json"))
    args = p.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import torch

    report: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "python": platform.python_version(), "torch": torch.__version__,
                                "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as root:
        if not args.skip_cpu:
            report["cpu"] = bench_cpu(args, root)
        report["gpu"] = bench_gpu(args, root) if args.gpu else {
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
    g = report["gpu"]
    if g.get("by_concurrency"):
        print(f"one GPU ({g['device']}), {g['trials']} trials x {g['epochs']} epochs, {g['encoder']}:")
        for k, v in g["by_concurrency"].items():
            print(f"  {k} concurrent: {v['trials_per_hour']:.0f} trials/hour ({v['seconds']:.0f} s)")
    else:
        print(f"GPU: {g['note']}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
