#!/usr/bin/env bash
# The main job on the built-in synthetic MOSI data, end to end on a laptop (2 idle CPU cores: about 6 min, measured 5 min 58 s):
#   1. an HSCL loss-weight sweep (Ray Tune + Optuna TPE + ASHA), its 2 best configurations re-ranked on
#      2 new seeds, the winner retrained on 3 seeds and its best model logged to MLflow;
#   2. an ablation study starting from that best configuration (T+A+V vs T only vs no fusion level,
#      3 seeds) with a test-time missing-modality robustness curve;
#   3. the report: Markdown, LaTeX and HTML, also attached to the MLflow parent runs.
# Everything lands under $OUT (default runs/quickstart). Re-running resumes and retrains nothing.
# The console shows one line per trial event (VERBOSE=2 for Ray Tune's own tables) and ends with the
# report's path and the commands that open the MLflow UI and the Optuna dashboard.
# It uses the random `tiny` text encoder and one acoustic/visual layer so that it fits in minutes on
# a CPU (synthetic MOSI: 1284 training, 1536 validation, 1024 test samples); for real runs see README.md ("Sweeps", "Ablations").
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/quickstart}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
URI="sqlite:///$OUT/mlflow.db"
SIZES=(--set av_layers=1 --set batch_size=32 --set lr_text=0.001)
VERBOSE=${VERBOSE:-1}

python sweeps/hscl.py --name quickstart-sweep --data synthetic-mosi --text-encoder tiny \
    --num-samples 8 --max-epochs 8 --asha-grace-period 3 --rerank-top 2 --rerank-seeds 2 \
    --final-seeds 1111,1112,1113 \
    "${SIZES[@]}" --storage-path "$OUT/sweeps" --tracking-uri "$URI" --verbose "$VERBOSE"

python ablations/run.py ablations/specs/quickstart.yaml --name quickstart-ablation \
    --base-sweep quickstart-sweep --storage-path "$OUT/ablations" --tracking-uri "$URI" --verbose "$VERBOSE"

python -m reports --tracking-uri "$URI" --experiment mmsa-synthetic-mosi \
    --sweep quickstart-sweep --ablation quickstart-ablation --methods --out "$OUT/report"

EXP=$(python -c "from mlflow.tracking import MlflowClient
print(MlflowClient('$URI').get_experiment_by_name('mmsa-synthetic-mosi').experiment_id)")
MODEL_RUN=$(python -c "from mlflow.tracking import MlflowClient
c = MlflowClient('$URI'); e = c.get_experiment_by_name('mmsa-synthetic-mosi').experiment_id
print(c.search_runs([e], \"tags.sweep_name = 'quickstart-sweep' and tags.kind = 'sweep'\")[0].data.tags.get('best_model_run_id', ''))")
echo
python -m sweeps list --tracking-uri "$URI"
echo
echo "== quickstart done =="
echo "Report:     $OUT/report/report.html (also report.md, report.tex)"
echo "MLflow UI:  mlflow ui --backend-store-uri $URI --host 127.0.0.1 --port 5000"
echo "            then open http://127.0.0.1:5000/#/experiments/$EXP/runs?workflowType=machine_learning"
echo "Optuna:     optuna-dashboard $OUT/sweeps/quickstart-sweep/optuna_journal.log"
echo "Best model: MLFLOW_TRACKING_URI=$URI mlflow artifacts download --run-id $MODEL_RUN --artifact-path model --dst-path $OUT/best_model"
echo "            python -m mmsa_core.predict --model $OUT/best_model"
