#!/usr/bin/env bash
# Issue 13's measurements on the shipped model and the demo clips, each a plain
# `advstudio evaluate` run whose table, JSON and report land in ${OUT:-/tmp}/survival:
# the survival of fgsm, pgdn, cw and mscw (paper presets) through the codecs, rooms and noise;
# the same attacks optimised with EoT through MP3 at 64 kbit/s; and PGD with EoT through MP3
# and through simulated rooms at a stated SNR budget, judged on fresh draws. DEVICE (default:
# CUDA when present), BATCH (default 24), DRAWS (fresh draws, default 20), EXTRA (added to
# every run, e.g. "--param max_iter=2" for a smoke run), PYTHON the interpreter; STAGES picks
# runs (default "plain eot mp3 rooms").
set -uo pipefail
out="${OUT:-/tmp}/survival"
mkdir -p "$out"
survival="mp3@32k,mp3@64k,mp3@128k,vorbis@q2,opus@24k,resample@8k,lowpass@4k,room:small,room:hall,noise@20dB"
common=(--survival "$survival" --survival-draws "${DRAWS:-20}")
source "$(dirname "$0")/evaluate_run.sh"
for stage in ${STAGES:-plain eot mp3 rooms}; do
    case $stage in
    plain) run plain --attack fgsm,pgdn,cw,mscw --preset paper ;;
    eot) run eot --attack fgsm,pgdn,cw,mscw --preset paper --eot mp3@64k --eot-samples 4 ;;
    mp3) run mp3 --attack pgdn --preset paper --param eps=0.02 --param eta=0.002 \
        --param max_iter=300 --param snr_db=35 --eot mp3@64k --eot-samples 4 \
        --param survival_rate=0.9 ;;
    rooms) run rooms --attack pgdn --preset paper --param eps=0.05 --param eta=0.005 \
        --param max_iter=300 --param snr_db=20 --eot room:small,room:medium,room:hall \
        --eot-samples 4 ;;
    esac
done
