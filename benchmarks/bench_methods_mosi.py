"""Every method on the leak-free real CMU-MOSI split, from its paper defaults, against a ridge probe,
with its missing-modality curve — one training per (method, seed).

    python benchmarks/bench_methods_mosi.py --data path/to/mosi_clean.pkl   # all methods, seeds 1111-1113
    python benchmarks/bench_methods_mosi.py --data path/to/mosi_clean.pkl --methods hscl,l1 --seeds 1111 --max-epochs 5
    python benchmarks/bench_methods_mosi.py --data path/to/mosi_clean.pkl --max-epochs 8 --cpus-per-trial 1 --fusion-baseline

Data: a leak-free CMU-MOSI split (the videos the feature extractors never saw; train 383 / valid 126 /
test 243); docs/DATA.md says how it is built and why the feature authors' own split (`mosi_utt.pkl`)
must not be used to compare models. Without `--data` the file is looked for in a `shared/data` folder
beside the checkout (the developers' copy).

Methods: one evaluate-protocol robustness study (`ablations/robustness.py`; one Ray Tune grid of
(method, seed), seed-major, MLflow parent ``kind=robustness``) with the MiniLM text encoder. Each
run trains on complete data and selects on complete validation, so its ``best/test/*`` is the
method comparison's number; right after training the best weights are also tested on masked test
copies at r = 0.0 … 1.0 (MMSA's masking) and with whole modalities absent. The method table
(`python -m reports --methods`: Δ and paired tests against HSCL over matched seeds, Holm) and the
robustness report (`--robustness`: curves, AUC over r ∈ [0, 1], whole-modality drop) are both
written from that study.

Probe: ridge on frozen, mean-pooled MiniLM sentence embeddings, penalty chosen on validation MAE
(`bench_mosi_vs_probe.probes`), same splits and metric code.

``--fusion-baseline``: also trains HSCL with the fusion feed-forward of before 2026-12
(``fusion_ffn_mult=4``) on the same seeds, as a second study, and prints HSCL before/after.

An interrupted run keeps its finished (method, seed) runs; re-running the same command resumes
(nothing finished is trained again) and rewrites the reports and the JSON.
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
AUC_KEYS = ("mae", "acc2_non0")


def _rows(results, keys=KEYS) -> dict:
    """method -> {metric: {mean, std}, n} over the FINISHED runs' unmasked best/test metrics."""
    by_method: dict[str, list] = {}
    for run, r in results:
        if r.status in ("FINISHED", "SKIPPED") and r.best_test:
            by_method.setdefault(run.config.method, []).append(r.best_test)
    out = {}
    for method, done in by_method.items():
        out[method] = {k: {"mean": statistics.fmean(t[k] for t in done),
                           "std": statistics.stdev([t[k] for t in done]) if len(done) > 1 else 0.0}
                       for k in keys}
        out[method]["n"] = len(done)
    return out


def _auc(tracker, results, rates) -> dict:
    """method -> {metric: {mean, std}} of the trapezoid AUC over `rates` (normalised by the span)."""
    from mmsa_core.record_names import robust_metric
    from reports.tables import trapezoid_auc

    per: dict[str, dict[str, list[float]]] = {}
    for run, r in results:
        if r.run_id is None or r.status not in ("FINISHED", "SKIPPED"):
            continue
        m = tracker.client.get_run(r.run_id).data.metrics
        for key in AUC_KEYS:
            ys = [m.get(robust_metric("tokens", "tav", rate, key)) for rate in rates]
            if all(y is not None for y in ys):
                per.setdefault(run.config.method, {}).setdefault(key, []).append(trapezoid_auc(list(rates), ys))
    return {meth: {k: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v)}
                   for k, v in d.items()} for meth, d in per.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED_DATA / "mosi_clean" / "mosi_clean.pkl"))
    p.add_argument("--methods", default="all")
    p.add_argument("--seeds", default="1111,1112,1113")
    p.add_argument("--max-epochs", type=int, default=None, help="(default: each method's preset)")
    p.add_argument("--storage-path", default=os.path.join(_REPO, "runs", "bench_methods_mosi"))
    p.add_argument("--num-cpus", type=int, default=0)
    p.add_argument("--cpus-per-trial", type=float, default=2.0,
                   help="2 = one trial at a time on 2 cores; 1 = two at once (MM-CKD with MiniLM peaks at ~9 GB)")
    p.add_argument("--fusion-baseline", action="store_true",
                   help="also train HSCL with fusion_ffn_mult=4 (the width before 2026-12) on the same seeds")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=None)
    args = p.parse_args()

    from ablations.robustness import build_study, format_outcome, run_robustness
    from sweeps.runtime_options import RuntimeOptions
    from benchmarks.bench_mosi_vs_probe import probes
    from mmsa_core.config import parse_assignments
    from mmsa_core.data import load_dataset
    from mmsa_core.methods import method_names
    from reports.build import build_report
    from sweeps.tracking import Tracker, experiment_name

    methods = list(method_names()) if args.methods == "all" else args.methods.split(",")
    if "hscl" in methods:  # the reference first, as in the CLI's examples
        methods.remove("hscl")
        methods.insert(0, "hscl")
    values = dict(parse_assignments(args.set))
    if args.max_epochs:
        values["max_epochs"] = args.max_epochs
    values.setdefault("text_encoder", "minilm")
    seeds = [int(s) for s in args.seeds.split(",")]
    name = "bench-methods-" + os.path.basename(args.data).split(".")[0]
    study = build_study(methods=methods, data=args.data, seeds=seeds, overrides=values, name=name)
    opts = RuntimeOptions(storage_path=args.storage_path, num_cpus=args.num_cpus, cpus_per_trial=args.cpus_per_trial,
                          verbose=1)
    t0 = time.perf_counter()
    data = load_dataset(args.data, text_encoder="minilm")
    probe = probes(data)["text (MiniLM mean)"]
    print(f"ridge probe on frozen MiniLM: test MAE {probe['test']['mae']:.4f}, "
          f"Acc-2 non0 {probe['test']['acc2_non0']:.4f} (alpha {probe['alpha']})", flush=True)
    res = run_robustness(study, opts)
    print(format_outcome(study, res))
    rows = _rows(res.results)
    for row in rows.values():
        row["beats_probe_mae"] = row["mae"]["mean"] < probe["test"]["mae"]
    tracker = Tracker(res.tracking_uri)
    auc = _auc(tracker, res.results, study.rates)

    print(f"\n{'method':<16}{'n':>3}" + "".join(f"{k:>18}" for k in KEYS) + "   beats probe MAE")
    print(f"{'ridge probe':<16}{'':>3}" + "".join(f"{probe['test'][k]:>18.4f}" for k in KEYS))
    for method, row in rows.items():
        print(f"{method:<16}{row['n']:>3}" + "".join(f"{row[k]['mean']:>10.4f} ± {row[k]['std']:.3f}" for k in KEYS)
              + f"   {row['beats_probe_mae']}")
    print(f"\nAUC over r = {study.rates[0]:.1f} … {study.rates[-1]:.1f} (trapezoid, mean over seeds)")
    for method, d in auc.items():
        print(f"{method:<16}" + "".join(f"  {k} {d[k]['mean']:.4f} ± {d[k]['std']:.4f}" for k in AUC_KEYS if k in d))

    baseline = None
    if args.fusion_baseline and "hscl" in methods:
        old = build_study(methods=["hscl"], data=args.data, seeds=seeds, overrides={**values, "fusion_ffn_mult": 4},
                          name=f"bench-hscl-ffn4-{os.path.basename(args.data).split('.')[0]}")
        old_res = run_robustness(old, opts)
        baseline = {"fusion_ffn_mult=4": _rows(old_res.results).get("hscl"),
                    "fusion_ffn_mult=1": rows.get("hscl"),
                    "auc_ffn4": _auc(tracker, old_res.results, old.rates).get("hscl")}
        print("\nHSCL fusion feed-forward width, before (4 x d_t) / after (d_t):")
        for label, row in baseline.items():
            if row and "mae" in row and "n" in row:
                print(f"  {label:<18}" + "".join(f"{k} {row[k]['mean']:.4f} ± {row[k]['std']:.3f}  " for k in KEYS))

    exp = experiment_name(data.name)
    out_dir = os.path.join(args.storage_path, "report")
    report = build_report(tracking_uri=res.tracking_uri, experiment=exp, methods=True, robustness=[name],
                          out_dir=out_dir, log_artifacts=False)
    print(f"report: {report.files.get('md')} / {report.files.get('html')}")
    write_json("methods_mosi", {"data": args.data, "seeds": seeds, "probe": probe, "methods": rows, "auc": auc,
                                "rates": list(study.rates), "fusion_baseline": baseline,
                                "configs": {m: c.to_dict() for m, c in study.configs.items()},
                                "seconds": time.perf_counter() - t0, "machine": machine()}, args.out)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
