"""Write the tabulated benchmark that `bench_search_simulated.py` replays: HSCL on synthetic MOSI.

    nice -n 19 python benchmarks/make_search_table.py                  # the committed table (see below)
    nice -n 19 python benchmarks/make_search_table.py --time 4         # time 4 runs, write nothing

The approach of tabulated HPO benchmarks (HPOBench, LCBench, Syne Tune's blackbox repository): every
configuration of a fixed design is trained once for the full schedule and every epoch's metrics are
kept, so that a search (random, TPE, ASHA, re-ranking...) can be replayed in seconds, many times,
with common random numbers, instead of training anew for each repetition.

Design: the paper configuration (`RunConfig.paper("hscl")`: row 0) plus ``--n-sobol`` points of a
scrambled Sobol sequence (scipy.stats.qmc, seed ``--design-seed``) over HSCL's searched space with
``--search-lr-dropout`` (ω1, ω2, α, τ, lr_text, lr_other log-uniform; dropout linear): the unit
cube is mapped with each parameter's own scale, exactly as `sweeps.spaces` samples it.

Runs: the trainer directly (no Ray, no MLflow), text encoder ``tiny`` (a random 2-layer BERT: for it
``lr_text`` is a learning rate of random layers, not of a pretrained encoder), av_layers 1, batch 32,
synthetic MOSI with ``--train`` training samples (the data seed is 0 whatever the run's seed: every
run sees the same samples) and LARGE validation and test splits (``--valid``, ``--test``), 16 epochs,
patience 16 (no early stop), one torch thread per run, ``--workers`` runs at a time. Training seed
1111 (the sweeps' trial seed) for every row; then ``--extra-seeds`` more seeds (1112, 1113, ...) for
the ``--extra-top`` rows with the best validation MAE and ``--extra-random`` rows drawn at random
(seed noise near the optimum, and an unbiased sample of it). The committed table has 129 + 2 × (10
+ 6) = 161 runs: ``--extra-top`` was cut from 20 to 10 while it was being written, when the shared
machine ran each run 3-5 times slower than idle (the design was kept whole; the seed-noise estimate
rests on 16 configurations × 3 seeds, and re-ranking draws residuals for candidates outside them).

Cost (2 cores, 2 runs at a time, one torch thread each): 18-22 s per run when the machine is
otherwise idle, 70-120 s when it is shared; the committed table took about 70 minutes of wall
time, much of it shared. ``--time 4`` measures it on yours.

Kept per run and epoch (float32): the sum of absolute errors on each consecutive chunk of ``--chunk``
samples of the validation and of the test split (their mean is the split's MAE; subsets of chunks
give the MAE on smaller validation splits, for the split-noise measurement and for simulating a
sweep whose validation split is small), and the epoch's training and evaluation seconds. The
per-sample predictions come from a wrapper around `mmsa_core.trainer.evaluate` installed in this
process only (the trainer's own `evaluate` computes the same MAE; the wrapper checks it agrees).

Output: one compressed ``.npz`` (``--out``; default ``benchmarks/data/search_table_hscl_synthetic.npz``)
with the design (unit cube and values), the space, the seeds, the data sizes, the code version and
the arrays; the runs done so far are also kept one file each under ``--work-dir`` so an interrupted
command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, _REPO)

import numpy as np  # noqa: E402

from benchmarks._common import RESULTS_DIR  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "search_table_hscl_synthetic.npz"
BASE_SEED = 1111
EPOCHS = 16


def space_params():
    """HSCL's searched space with --search-lr-dropout, in the sweeps' order (core, then optimiser)."""
    from sweeps.spaces import SPACES

    return SPACES["hscl"].params(True)


def unit_to_values(u: np.ndarray, params) -> np.ndarray:
    """Map points of the unit cube to parameter values (log scale where the parameter is log)."""
    out = np.empty_like(u, dtype=np.float64)
    for j, p in enumerate(params):
        if p.log:
            out[:, j] = np.exp(np.log(p.low) + u[:, j] * (np.log(p.high) - np.log(p.low)))
        else:
            out[:, j] = p.low + u[:, j] * (p.high - p.low)
    return out


def values_to_unit(x: np.ndarray, params) -> np.ndarray:
    out = np.empty_like(np.asarray(x, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    for j, p in enumerate(params):
        if p.log:
            out[..., j] = (np.log(x[..., j]) - np.log(p.low)) / (np.log(p.high) - np.log(p.low))
        else:
            out[..., j] = (x[..., j] - p.low) / (p.high - p.low)
    return out


def base_overrides(args) -> dict:
    return {"data": "synthetic-mosi", "text_encoder": "tiny", "av_layers": 1, "batch_size": 32,
            "synthetic_train": args.train, "synthetic_valid": args.valid, "synthetic_test": args.test,
            "max_epochs": EPOCHS, "patience": EPOCHS, "num_threads": 1, "device": "cpu"}


def design(args, params) -> tuple[np.ndarray, np.ndarray]:
    """(unit, values): row 0 = the paper configuration, then the scrambled Sobol points."""
    from scipy.stats import qmc

    from mmsa_core.config import RunConfig

    paper = RunConfig.paper("hscl").to_dict()
    paper_values = np.array([[paper[p.name] for p in params]], dtype=np.float64)
    sobol = qmc.Sobol(d=len(params), scramble=True, seed=args.design_seed)
    unit = sobol.random(args.n_sobol)
    unit = np.vstack([values_to_unit(paper_values, params), unit])
    return unit, np.vstack([paper_values, unit_to_values(unit[1:], params)])


# ---------------------------------------------------------------------------------------------
# one run (in a worker process)

_DATA = None
_ARGS = None


def _init_worker(args_dict: dict) -> None:
    global _DATA, _ARGS
    import torch

    torch.set_num_threads(1)
    _ARGS = argparse.Namespace(**args_dict)
    from mmsa_core.config import RunConfig
    from mmsa_core.trainer import load_run_data

    cfg = RunConfig.paper("hscl", **base_overrides(_ARGS))
    _DATA = load_run_data(cfg)


def _chunk_sums(pred: np.ndarray, true: np.ndarray, chunk: int) -> np.ndarray:
    err = np.abs(pred.astype(np.float64).reshape(-1) - true.astype(np.float64).reshape(-1))
    n = (len(err) // chunk) * chunk
    return err[:n].reshape(-1, chunk).sum(axis=1)


def run_one(task: dict) -> dict:
    """Train one (configuration, seed); per-epoch chunked absolute errors on valid and test."""
    import mmsa_core.trainer as trainer
    from mmsa_core.config import RunConfig
    from mmsa_core.metrics import regression_metrics

    args, data = _ARGS, _DATA
    values = {**base_overrides(args), **task["values"], "seed": task["seed"]}
    cfg = RunConfig.paper("hscl", **values)
    captured: list[tuple[str, np.ndarray, float]] = []
    original = trainer.evaluate

    def evaluate(runtime, split, cfg_, device):  # the trainer's evaluate, keeping the predictions
        started = time.perf_counter()
        pred, true = trainer.predict(runtime, split, cfg_, device)
        name = "valid" if split is data.splits["valid"] else "test" if split is data.splits["test"] else "?"
        captured.append((name, _chunk_sums(pred, true, args.chunk), time.perf_counter() - started))
        return regression_metrics(pred, true)

    valid, test, train_s, eval_s, mae_check = [], [], [], [], []

    def on_epoch_end(record, _save):
        by = {name: (sums, s) for name, sums, s in captured}
        captured.clear()
        valid.append(by["valid"][0])
        test.append(by["test"][0])
        eval_s.append(by["valid"][1] + by["test"][1])
        train_s.append(record.seconds - eval_s[-1])
        mae_check.append(abs(by["valid"][0].sum() / (len(by["valid"][0]) * args.chunk) - record.valid["mae"]))

    trainer.evaluate = evaluate
    started = time.perf_counter()
    try:
        trainer.train(cfg, data, on_epoch_end=on_epoch_end, progress=False)
    finally:
        trainer.evaluate = original
    if max(mae_check) > 1e-4:
        raise RuntimeError(f"chunked MAE disagrees with the trainer's by {max(mae_check):.2g}")
    return {"row": task["row"], "seed": task["seed"], "valid": np.array(valid, dtype=np.float32),
            "test": np.array(test, dtype=np.float32), "train_s": np.array(train_s, dtype=np.float32),
            "eval_s": np.array(eval_s, dtype=np.float32), "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------------------------------


def _run_tasks(tasks: list[dict], args, work: Path | None) -> list[dict]:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing as mp

    done, todo = [], []
    for t in tasks:
        f = work / f"row{t['row']:04d}_seed{t['seed']}.npz" if work else None
        if f is not None and f.exists():
            with np.load(f) as z:
                done.append({k: (z[k] if z[k].ndim else z[k].item()) for k in z.files})
        else:
            todo.append(t)
    if done:
        print(f"{len(done)} run(s) already in {work}; {len(todo)} to go", flush=True)
    started = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(vars(args),)) as pool:
        futures = [pool.submit(run_one, t) for t in todo]
        for i, fut in enumerate(as_completed(futures), start=1):
            res = fut.result()
            if work is not None:
                np.savez(work / f"row{res['row']:04d}_seed{res['seed']}.npz", **res)
            done.append(res)
            el = time.perf_counter() - started
            best = (res["valid"].sum(axis=1) / (res["valid"].shape[1] * args.chunk)).min()
            print(f"[{i}/{len(todo)}] row {res['row']} seed {res['seed']}: {res['seconds']:.0f} s, "
                  f"best valid MAE {best:.4f}; elapsed {el / 60:.1f} min, eta "
                  f"{el / i * (len(todo) - i) / 60:.1f} min", flush=True)
    return done


def code_version() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mmsa_core"], cwd=_REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty(mmsa_core)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_table(args, runs: list[dict], unit: np.ndarray, values: np.ndarray, params, extra_meta: dict,
                t0: float) -> Path:
    """The one compressed file the benchmark reads (rows of `unit`/`values` = configurations)."""
    runs = sorted(runs, key=lambda r: (r["row"], r["seed"]))
    names = [p_.name for p_ in params]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "what": "HSCL on synthetic MOSI, tiny text encoder: per-epoch chunked absolute errors, valid and test",
        "space": [p_.describe() for p_ in params], "param_names": names,
        "base_config": base_overrides(args), "base_seed": BASE_SEED,
        "sizes": {"train": args.train, "valid": args.valid, "test": args.test}, "chunk": args.chunk,
        "epochs": EPOCHS, "design": f"row 0 = RunConfig.paper('hscl'); rows 1.. = scipy.stats.qmc.Sobol("
                                    f"d={len(names)}, scramble=True, seed={args.design_seed}).random({args.n_sobol})",
        "code_version": code_version(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(["python", "benchmarks/make_search_table.py", *sys.argv[1:]]), "workers": args.workers,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "run_seconds_total": round(float(sum(r["seconds"] for r in runs)), 1),
        **extra_meta,
    }
    np.savez_compressed(
        out, meta=np.array(json.dumps(meta)), unit=unit.astype(np.float64), values=values,
        run_row=np.array([r["row"] for r in runs], dtype=np.int32),
        run_seed=np.array([r["seed"] for r in runs], dtype=np.int32),
        valid_abs_err=np.stack([r["valid"] for r in runs]).astype(np.float32),
        test_abs_err=np.stack([r["test"] for r in runs]).astype(np.float32),
        train_seconds=np.stack([r["train_s"] for r in runs]).astype(np.float32),
        eval_seconds=np.stack([r["eval_s"] for r in runs]).astype(np.float32))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(runs)} runs, {values.shape[0]} configurations, "
          f"{time.perf_counter() - t0:.0f} s")
    return out


def write_partial(args, work: Path, unit: np.ndarray, values: np.ndarray, params, t0: float) -> int:
    """The table of the runs done so far: configurations without a base-seed run are left out (and
    the rows renumbered; ``design_rows`` keeps their index in the full design)."""
    runs = []
    for f in sorted(work.glob("row*_seed*.npz")):
        with np.load(f) as z:
            runs.append({k: (z[k] if z[k].ndim else z[k].item()) for k in z.files})
    keep = sorted({int(r["row"]) for r in runs if int(r["seed"]) == BASE_SEED})
    if not keep:
        print(f"no base-seed run in {work}", file=sys.stderr)
        return 1
    new = {row: i for i, row in enumerate(keep)}
    runs = [{**r, "row": new[int(r["row"])]} for r in runs if int(r["row"]) in new]
    extra = sorted({int(r["row"]) for r in runs if int(r["seed"]) != BASE_SEED})
    meta = {"partial": True, "design_rows": keep, "extra_rows_top": extra, "extra_rows_random": [],
            "extra_seeds": sorted({int(r["seed"]) for r in runs} - {BASE_SEED}),
            "note": "partial table: the extra-seed rows are listed as 'top' whichever way they were chosen"}
    write_table(args, runs, unit[keep], values[keep], params, meta, t0)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-sobol", type=int, default=128, help="Sobol points besides the paper row (default %(default)s)")
    p.add_argument("--design-seed", type=int, default=0)
    p.add_argument("--extra-seeds", type=int, default=2, help="seeds beyond 1111 for some rows (default %(default)s)")
    p.add_argument("--extra-top", type=int, default=10, help="rows with the best valid MAE that get them")
    p.add_argument("--extra-random", type=int, default=6, help="further rows, drawn at random, that get them")
    p.add_argument("--train", type=int, default=384)
    p.add_argument("--valid", type=int, default=1024)
    p.add_argument("--test", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=64, help="samples per stored error chunk (default %(default)s)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--time", type=int, default=0, metavar="N", help="only time N runs of the design; write nothing")
    p.add_argument("--partial", action="store_true",
                   help="train nothing: write the table from the runs already in --work-dir (the configurations "
                        "with a base-seed run; for a deadline, or to try the benchmark on an early table)")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--work-dir", default=str(RESULTS_DIR / "search_table_runs"))
    args = p.parse_args()
    if args.valid % args.chunk or args.test % args.chunk:
        p.error("--valid and --test must be multiples of --chunk")

    params = space_params()
    unit, values = design(args, params)
    names = [p_.name for p_ in params]

    def task(row: int, seed: int) -> dict:
        return {"row": row, "seed": seed, "values": {n: float(v) for n, v in zip(names, values[row])}}

    t0 = time.perf_counter()
    if args.time:
        res = _run_tasks([task(r, BASE_SEED) for r in range(args.time)], args, None)
        per_run = [r["seconds"] for r in res]
        tr = np.mean([r["train_s"].mean() for r in res])
        ev = np.mean([r["eval_s"].mean() for r in res])
        wall = time.perf_counter() - t0
        print(f"{len(res)} runs in {wall:.0f} s wall ({args.workers} workers): {np.mean(per_run):.1f} s per run, "
              f"per epoch {tr:.2f} s training + {ev:.2f} s evaluating {args.valid + args.test} samples")
        n_total = values.shape[0] + args.extra_seeds * (args.extra_top + args.extra_random)
        print(f"the whole table ({n_total} runs) would take ~{wall / len(res) * n_total / 60:.0f} min")
        return 0

    work = Path(args.work_dir)
    if args.partial:
        return write_partial(args, work, unit, values, params, t0)
    work.mkdir(parents=True, exist_ok=True)
    (work / "args.json").write_text(json.dumps(vars(args), indent=2))
    first = _run_tasks([task(r, BASE_SEED) for r in range(values.shape[0])], args, work)
    best = np.empty(values.shape[0])
    for r in first:
        best[r["row"]] = (r["valid"].sum(axis=1) / (args.valid)).min()
    order = [int(i) for i in np.argsort(best)]
    extra_rows = order[:args.extra_top]
    rng = np.random.default_rng(args.design_seed)
    rest = [i for i in range(values.shape[0]) if i not in extra_rows]
    extra_rows += sorted(int(i) for i in rng.choice(rest, size=min(args.extra_random, len(rest)), replace=False))
    seeds = [BASE_SEED + k for k in range(1, args.extra_seeds + 1)]
    more = _run_tasks([task(r, s) for r in extra_rows for s in seeds], args, work) if seeds else []

    runs = first + more
    meta = {"extra_rows_top": order[:args.extra_top], "extra_rows_random": extra_rows[args.extra_top:],
            "extra_seeds": seeds}
    write_table(args, runs, unit, values, params, meta, t0)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
