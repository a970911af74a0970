#!/usr/bin/env bash
# Every registered method (or --methods a,b,c) from its paper defaults over the same seeds and data,
# then the method table: mean ± std over seeds, Δ and paired tests against HSCL (Holm-corrected).
#   bash scripts/compare_methods.sh                       # synthetic MOSI, tiny encoder, 1 epoch (minutes)
#   bash scripts/compare_methods.sh --data path/to/mosi_clean.pkl --seeds 1111,1112,1113   # docs/DATA.md
# Any argument goes to ablations/compare.py; with none, it runs its --smoke comparison. Everything
# lands under $OUT (default runs/compare). Re-running resumes and retrains nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/compare}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
URI="sqlite:///$OUT/mlflow.db"
ARGS=("$@")
if [ ${#ARGS[@]} -eq 0 ]; then ARGS=(--smoke --set clfa.reference_encoder=tiny); fi
DATA=synthetic-mosi
for ((i = 0; i < ${#ARGS[@]}; i++)); do
  if [ "${ARGS[$i]}" = "--data" ]; then DATA=${ARGS[$((i + 1))]}; fi
done
EXPERIMENT=$(python -c "import sys; from sweeps.config import data_name; from sweeps.tracking import experiment_name; print(experiment_name(data_name(sys.argv[1])))" "$DATA")

python ablations/compare.py "${ARGS[@]}" --storage-path "$OUT" --tracking-uri "$URI"
python -m reports --tracking-uri "$URI" --experiment "$EXPERIMENT" --methods --out "$OUT/report"
echo
echo "Report: $OUT/report/report.html (also report.md, report.tex)"
echo "MLflow UI:  mlflow ui --backend-store-uri $URI --host 127.0.0.1 --port 5000"
