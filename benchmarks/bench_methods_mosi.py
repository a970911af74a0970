"""Every method on the leak-free real CMU-MOSI split, from its paper defaults, against a ridge probe.

    python benchmarks/bench_methods_mosi.py                         # all methods, seeds 1111-1113
    python benchmarks/bench_methods_mosi.py --methods hscl,l1 --seeds 1111 --max-epochs 5

Data: `../shared/data/mosi_clean/mosi_clean.pkl` (the 31 videos the feature extractors never saw,
re-split by video; its README says why `mosi_utt.pkl` must not be used to compare models). Methods:
`ablations/compare.py` (one Ray Tune grid of (method, seed), seed-major, MLflow parent
``kind=comparison``) with the MiniLM text encoder; test metrics at each run's best validation epoch.
Probe: ridge on frozen, mean-pooled MiniLM sentence embeddings, penalty chosen on validation MAE
(`bench_mosi_vs_probe.probes`), same splits and metric code. Writes the method report
(`python -m reports --methods`: Δ and paired tests against HSCL, Holm) and a JSON of the table.
An interrupted run keeps its finished (method, seed) runs; re-running resumes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, _REPO)

from benchmarks._common import SHARED_DATA, machine, write_json  # noqa: E402

KEYS = ("mae", "corr", "acc2_non0", "f1_non0", "acc7")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED_DATA / "mosi_clean" / "mosi_clean.pkl"))
    p.add_argument("--methods", default="all")
    p.add_argument("--seeds", default="1111,1112,1113")
    p.add_argument("--max-epochs", type=int, default=None, help="(default: each method's preset)")
    p.add_argument("--storage-path", default=os.path.join(_REPO, "runs", "bench_methods_mosi"))
    p.add_argument("--num-cpus", type=int, default=0)
    p.add_argument("--cpus-per-trial", type=float, default=2.0, help="one trial at a time on 2 cores")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=None)
    args = p.parse_args()

    from ablations.compare import build_comparison, run_comparison
    from benchmarks.bench_mosi_vs_probe import probes
    from mmsa_core.config import parse_assignments
    from mmsa_core.data import load_dataset
    from reports.build import build_report
    from sweeps.tracking import experiment_name

    values = dict(parse_assignments(args.set))
    if args.max_epochs:
        values["max_epochs"] = args.max_epochs
    values.setdefault("text_encoder", "minilm")
    comp = build_comparison(args.methods.split(","), data=args.data, seeds=[int(s) for s in args.seeds.split(",")],
                            values=values, name="bench-methods-" + os.path.basename(args.data).split(".")[0])
    t0 = time.perf_counter()
    data = load_dataset(args.data, text_encoder="minilm")
    probe = probes(data)["text (MiniLM mean)"]
    print(f"ridge probe on frozen MiniLM: test MAE {probe['test']['mae']:.4f}, "
          f"Acc-2 non0 {probe['test']['acc2_non0']:.4f} (alpha {probe['alpha']})", flush=True)
    res = run_comparison(comp, storage_path=args.storage_path, num_cpus=args.num_cpus,
                         cpus_per_trial=args.cpus_per_trial, max_concurrent=0, verbose=1)
    rows = {}
    for method in comp.configs:
        done = [r for m, _, r in res.results if m == method and r.status in ("FINISHED", "SKIPPED") and r.best_test]
        if not done:
            continue
        rows[method] = {k: {"mean": statistics.fmean(r.best_test[k] for r in done),
                            "std": statistics.stdev([r.best_test[k] for r in done]) if len(done) > 1 else 0.0}
                        for k in KEYS}
        rows[method]["n"] = len(done)
        rows[method]["beats_probe_mae"] = rows[method]["mae"]["mean"] < probe["test"]["mae"]
    print(f"\n{'method':<16}{'n':>3}" + "".join(f"{k:>18}" for k in KEYS) + "   beats probe MAE")
    print(f"{'ridge probe':<16}{'':>3}" + "".join(f"{probe['test'][k]:>18.4f}" for k in KEYS))
    for method, row in rows.items():
        print(f"{method:<16}{row['n']:>3}" + "".join(f"{row[k]['mean']:>10.4f} ± {row[k]['std']:.3f}" for k in KEYS)
              + f"   {row['beats_probe_mae']}")
    exp = experiment_name(data.name)
    report = build_report(tracking_uri=res.tracking_uri, experiment=exp, methods=True,
                          out_dir=os.path.join(args.storage_path, "report"), log_artifacts=False)
    print(f"report: {report.files.get('html')}")
    write_json("methods_mosi", {"data": args.data, "seeds": list(comp.seeds), "probe": probe, "methods": rows,
                                "configs": {m: c.to_dict() for m, c in comp.configs.items()},
                                "seconds": time.perf_counter() - t0, "machine": machine()}, args.out)


if __name__ == "__main__":
    main()
