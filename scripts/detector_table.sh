#!/usr/bin/env bash
# Each detector's AUC and TPR at 5 % FPR against pgdn and cw, before and after the adaptive
# attack, on the shipped instrument model and a small rendered demo set: about 15 minutes on
# 2 CPU cores. Usage: scripts/detector_table.sh [OUT]  (env: PYTHON, PER_CLASS, FIT, HELD,
# MAX_ITER, ETA, WEIGHT, THREADS). Prints the table; OUT keeps the data, the fitted
# detectors, results.json and report/report.html.
set -euo pipefail
OUT=${1:-detector-table}
PYTHON=${PYTHON:-python}
PER_CLASS=${PER_CLASS:-4}   # 48 clips: the training fonts to fit on, a held-out font to test
FIT=${FIT:-16}              # clean fitting clips (each attacked by pgdn and cw)
HELD=${HELD:-8}             # held-out clips
MAX_ITER=${MAX_ITER:-30}    # both attacks at their paper bounds (pgdn eps 0.0005, cw c 0.01)
ETA=${ETA:-1e-4}
WEIGHT=${WEIGHT:-1.0}
THREADS=${THREADS:-2}
ATTACKS=(--attack pgdn --attack cw --param "max_iter=$MAX_ITER" --param "eta=$ETA")
advstudio() { "$PYTHON" -m advstudio "$@"; }

mkdir -p "$OUT"
[ -f "$OUT/data/metadata.csv" ] || advstudio data render-demo --per-class "$PER_CLASS" "$OUT/data"
advstudio detect fit "$OUT/data/metadata.csv" "${ATTACKS[@]}" --split train --limit "$FIT" \
    --threads "$THREADS" --out "$OUT/detectors" --overwrite
advstudio detect evaluate "$OUT/data/metadata.csv" "${ATTACKS[@]}" --split validation \
    --limit "$HELD" --threads "$THREADS" --detector "$OUT/detectors" --adaptive \
    --weight "$WEIGHT" --json "$OUT/results.json" --report "$OUT/report" --overwrite
