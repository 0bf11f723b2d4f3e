#!/usr/bin/env bash
# Issue 15's defense figures on the shipped instrument model: every input-transform defense
# against pgdn and cw, each with the defended model's clean accuracy and its accuracy under the
# plain attack (made on the undefended model) and the adaptive attack (straight-through
# gradients, EoT for random transforms), on LIMIT (default 8) of the 24 demo clips spread over
# the classes. Table, JSON and HTML report land in ${OUT:-/tmp}/defenses. MODELS: model
# directories (distilled, adversarially trained) evaluated as defenses too; DEVICE (default:
# CUDA when present); EOT (draws per iteration, default 4); EXTRA added to the command (e.g.
# "--param max_iter=2" for a smoke run); PYTHON the interpreter. About 15 minutes on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-/tmp}/defenses"
mkdir -p "$out"
python="${PYTHON:-python3}"
defenses=(mp3@64k opus@24k resample@8k lowpass@4k quantise@8bit noise@30dB median@5
    "median@5,noise@30dB,mp3@64k")
args=()
for d in "${defenses[@]}" ${MODELS:-}; do args+=(--defense "$d"); done
cd "$root"
# PGD at an L-inf bound of 0.002 (about -54 dBFS) and C&W with its L-inf clip 0.01, both with
# sign-Adam steps: 40 iterations each, enough for the undefended model to fall on most clips.
"$python" -m advstudio defend evaluate resources/demo "${args[@]}" \
    --attack pgdn --attack cw --param eps=0.002 --param c=0.01 --param eta=0.0002 \
    --param max_iter=40 --limit "${LIMIT:-8}" --eot-samples "${EOT:-4}" \
    ${DEVICE:+--device "$DEVICE"} --json "$out/defenses.json" --report "$out/report" \
    --overwrite ${EXTRA:-} | tee "$out/table.txt"
