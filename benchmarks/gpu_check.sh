#!/usr/bin/env bash
# One prepared check for a machine with a GPU, under 8 minutes (each part has its own time limit):
#   1. the gpu-marked tests (python -m pytest -m gpu)
#   2. one HSCL training step, fp32 and bf16 autocast, at the authors' shapes (768-wide 2-layer BERT,
#      50 tokens/frames, batch 32 and 128; against the authors' code with --authors-src DIR)
#   3. trials/hour at 1, 2 and 4 trials per GPU: MiniLM and a BERT-base-sized random encoder
#   4. peak GPU memory per method at batch 32 and 128 (fp32 and bf16)
# JSON per part and summary.json (what ran, what was skipped and why, seconds) go to --results DIR.
#
#   bash benchmarks/gpu_check.sh [--results DIR] [--authors-src DIR]   # on a GPU machine
#   bash benchmarks/gpu_check.sh --cpu-short [--results DIR]           # the CPU parts, about a minute
#
# Without CUDA (or with --cpu-short) it runs the CPU parts only — the training step in fp32 on the
# CPU at the authors' shapes, one small batch — and lists every GPU part as skipped with the reason.
# Exit code: 0 when no part that ran failed, 1 otherwise, 2 on a bad option.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

mode=gpu
results=""
authors=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-short) mode=cpu-short ;;
    --results) results=${2:?--results needs a directory}; shift ;;
    --authors-src) authors=${2:?--authors-src needs a directory}; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
results=${results:-benchmarks/results/gpu_check}
mkdir -p "$results" || exit 2
: > "$results/parts.tsv"
PY=${PYTHON:-python}
export RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

cuda=$($PY -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
if [ "$mode" = gpu ] && [ "$cuda" != 1 ]; then
  echo "gpu_check: no CUDA device here: running the CPU short form (as --cpu-short)"
  mode=cpu-short
fi
start_all=$(date +%s)
failed=0

# run NAME LIMIT_S OUTPUT -- COMMAND...: one part, its log in RESULTS/NAME.log, a line in parts.tsv
run() {
  local name=$1 limit=$2 output=$3
  shift 4
  local t0 rc status
  t0=$(date +%s.%N)
  echo "gpu_check: $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$results/$name.log" 2>&1
  rc=$?
  case $rc in 0) status=ok ;; 124) status=timeout; failed=1 ;; *) status=failed; failed=1 ;; esac
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$(echo "$(date +%s.%N) - $t0" | bc)" "$output" "exit $rc" \
    >> "$results/parts.tsv"
  [ "$status" = ok ] || tail -5 "$results/$name.log"
}
skip() {  # skip NAME WHY
  printf '%s\tskipped\t0\t\t%s\n' "$1" "$2" >> "$results/parts.tsv"
  echo "gpu_check: $1 skipped: $2"
}

authors_args=()
[ -n "$authors" ] && authors_args=(--authors-src "$authors")
if [ "$mode" = gpu ]; then
  run pytest_gpu 60 "$results/pytest_gpu.xml" -- $PY -m pytest -m gpu -q -p no:cacheprovider \
    --junitxml="$results/pytest_gpu.xml"
  run train_step_fp32 60 "$results/train_step_fp32.json" -- $PY benchmarks/bench_train_step.py --device cuda \
    --batch-sizes 32,128 --steps 10 --warmup 3 --repeats 3 "${authors_args[@]}" --out "$results/train_step_fp32.json"
  run train_step_bf16 60 "$results/train_step_bf16.json" -- $PY benchmarks/bench_train_step.py --device cuda --amp \
    --batch-sizes 32,128 --steps 10 --warmup 3 --repeats 3 "${authors_args[@]}" --out "$results/train_step_bf16.json"
  bert=$(mktemp -d /tmp/gpu_check_bert.XXXXXX)
  run random_bert_base 30 "$bert" -- $PY benchmarks/make_random_bert.py "$bert"
  run trials_per_hour_minilm 100 "$results/trials_minilm.json" -- $PY benchmarks/bench_sweep_overhead.py --skip-cpu \
    --gpu --concurrency-encoder minilm --concurrency-trials 4 --concurrency-epochs 1 --output "$results/trials_minilm.json"
  run trials_per_hour_bert_base 100 "$results/trials_bert_base.json" -- $PY benchmarks/bench_sweep_overhead.py \
    --skip-cpu --gpu --concurrency-encoder "$bert" --concurrency-trials 4 --concurrency-epochs 1 \
    --output "$results/trials_bert_base.json"
  run gpu_memory 60 "$results/gpu_memory.json" -- $PY benchmarks/bench_gpu_memory.py --batch-sizes 32,128 \
    --out "$results/gpu_memory.json"
  rm -rf "$bert"
else
  why="no CUDA device (CPU short form)"
  skip pytest_gpu "$why: the gpu-marked tests skip themselves"
  run train_step_fp32 90 "$results/train_step_fp32.json" -- $PY benchmarks/bench_train_step.py --device cpu \
    --batch-sizes 8 --steps 1 --warmup 0 --repeats 1 --threads 2 "${authors_args[@]}" --out "$results/train_step_fp32.json"
  skip train_step_bf16 "$why: the trainer's bf16 autocast is CUDA-only"
  skip trials_per_hour_minilm "$why: trials per GPU need a GPU (CPU concurrency: bench_sweep_overhead.py --cpu-concurrency)"
  skip trials_per_hour_bert_base "$why: trials per GPU need a GPU"
  skip gpu_memory "$why: peak GPU memory needs a GPU"
fi

$PY - "$results" "$mode" "$cuda" "$(( $(date +%s) - start_all ))" <<'EOF'
import json, sys
from pathlib import Path

results, mode, cuda, seconds = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
parts = []
for line in (results / "parts.tsv").read_text().splitlines():
    name, status, secs, output, note = line.split("\t")
    parts.append({"name": name, "status": status, "seconds": round(float(secs or 0), 1),
                  "output": output or None, "note": note})
summary = {"mode": mode, "cuda": cuda, "total_seconds": seconds, "parts": parts,
           "ran": [p["name"] for p in parts if p["status"] != "skipped"],
           "skipped": {p["name"]: p["note"] for p in parts if p["status"] == "skipped"},
           "failed": [p["name"] for p in parts if p["status"] in ("failed", "timeout")]}
(results / "summary.json").write_text(json.dumps(summary, indent=2))
print(f"gpu_check ({mode}): ran {', '.join(summary['ran']) or 'nothing'}; skipped "
      f"{', '.join(summary['skipped']) or 'nothing'}; failed {', '.join(summary['failed']) or 'nothing'}; "
      f"{seconds} s; {results / 'summary.json'}")
EOF
exit $failed
