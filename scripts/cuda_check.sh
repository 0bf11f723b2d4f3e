#!/usr/bin/env bash
# The CUDA path on a machine with a GPU: the CUDA tests, then the Table 1 study of the shipped
# model on the demo clips with the four paper presets on the GPU (timed). Needs torch,
# torchaudio and advstudio's other dependencies importable; writes to ${OUT:-/tmp}.
set -uo pipefail
out="${OUT:-/tmp}"
nvidia-smi -L
python3 -c "import torch, torchaudio; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_cuda.py 2>&1 | tail -15
python3 -m advstudio classify resources/demo/*/*.flac --device cuda --json >"$out/classify.json"
python3 - "$out/classify.json" <<'PY'
import json, sys
from pathlib import Path
rows = [r for r in json.load(open(sys.argv[1])) if "label" in r]
right = sum(Path(r["file"]).parent.name == r["label"] for r in rows)
print(f"classify on cuda: {right}/{len(rows)} demo clips right")
PY
start=$(date +%s.%N)
python3 -m advstudio evaluate --attack fgsm,pgdn,cw,mscw --device cuda --db "$out/study.sqlite" \
    --json "$out/study.json" 2>"$out/evaluate.err"
echo "evaluate exit $? in $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"
tail -3 "$out/evaluate.err"
