#!/usr/bin/env bash
# Paper 004's measurements on the shipped model and the demo clips (issue 10), each a plain
# `advstudio evaluate` run whose table, JSON and report land in ${OUT:-/tmp}/paper004:
# the spectrogram adversary with --target wrong (presets paper and nogl: Griffin-Lim on and
# off), the spectral SNR sweep, --target every-label and --target right. DEVICE (default:
# CUDA when present) and BATCH (default 24) choose where and how wide; EXTRA adds arguments to
# every run (EXTRA="--param max_iter=2" for a smoke run); PYTHON the interpreter.
set -uo pipefail
out="${OUT:-/tmp}/paper004"
mkdir -p "$out"
common=(--attack spectrogram)
source "$(dirname "$0")/evaluate_run.sh"
run wrong --preset paper --target wrong
run nogl --preset nogl --target wrong
run sweep --preset paper --target wrong --sweep snr_db=5,10,15,20,25,30,40
run right --preset paper --target right
run every-label --preset paper --target every-label
