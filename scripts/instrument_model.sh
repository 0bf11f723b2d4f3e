#!/usr/bin/env bash
# Issue 12's instrument model from nothing, in one folder WORK (default /tmp/instrument):
#   1. the version-2 demo set (phrases, synthesised gongs and voices, recording conditions),
#      WORK/demo-v2, PER_CLASS (default 200) clips per class, seed 0 (about 0.5 s of one core
#      per clip);
#   2. leave-one-group-out over its source groups, WORK/loso: RUNS runs of the same command
#      side by side (default: one per core, each on one thread), which share the folds;
#   3. the shipped model's recipe trained on every group, WORK/instrument-cnn (no validation:
#      the leave-one-group-out figures are its expected accuracy on unseen sounds, and its card
#      gives them);
#   4. the real recordings of scripts/real_recordings.py, WORK/real, and that model scored on
#      them;
#   5. ("unheard") that model scored on a General MIDI font the project never trains on: the
#      version-2 phrases played on OPL-3_FM_128M alone (Debian's opl3-soundfont, when it is
#      installed; not a dependency), WORK/opl3, 100 clips per class, seed 11; and on the demo
#      clips of resources/demo.
# Every step resumes: a finished step is kept, an interrupted training continues from its
# checkpoint (so a changed recipe or renderer needs a fresh WORK, or the old outputs are kept).
# The recipe: the demo preset, EPOCHS epochs (default 40), silence trimmed at 60 dB and
# levelled to -20 dBFS, windows cut from excerpts, and half the clips cut to a 0.3-1.5 s
# stretch each epoch. Recipe 1 (without the short stretches, on a set whose gongs all came from
# the modal model) was fixed before any held-out result was seen; this one, recipe 2, was chosen
# after seeing recipe 1's: the random-position one-second condition was its weakest, and
# holding out its only gong model left no gong to learn from (the set now has an FM gong beside
# it). PYTHON is the
# interpreter (default .venv/bin/python); STAGES picks steps (default "render loso train real
# unheard").
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-/tmp/instrument}"
python="${PYTHON:-$repo/.venv/bin/python}"
runs="${RUNS:-$(nproc)}"
recipe=(--preset demo --seed 0 --epochs "${EPOCHS:-40}" --trim-db 60 --level-db -20 --excerpts
    --short-excerpts 0.5)
advstudio() { "$python" -m advstudio "$@"; }
mkdir -p "$work"
export ADVSTUDIO_THREADS=1 OMP_NUM_THREADS=1
opl3=/usr/share/sounds/sf2/OPL-3_FM_128M.sf2
stages="${STAGES:-render loso train real unheard}"
for stage in $stages; do  # every name checked before hours of the first stages
    case $stage in
    render | loso | train | real | unheard) ;;
    *) echo "unknown stage $stage (render, loso, train, real, unheard)" >&2; exit 2 ;;
    esac
done
for stage in $stages; do
    case $stage in
    render)
        [ -e "$work/demo-v2/metadata.csv" ] \
            || advstudio data render-demo "$work/demo-v2" --per-class "${PER_CLASS:-200}" --seed 0 \
                --version 2 ;;
    loso)
        # the last epoch only is validated: each fold is judged on its held-out group anyway
        pids=()
        for _ in $(seq "$runs"); do
            advstudio data loso "$work/demo-v2" --out "$work/loso" "${recipe[@]}" \
                --validate-every "${EPOCHS:-40}" &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid"; done ;;
    train)
        [ -e "$work/instrument-cnn/card.json" ] \
            || advstudio train "$work/demo-v2" --hold-out-group none --out "$work/instrument-cnn" \
                --loso "$work/loso" "${recipe[@]}" --resume ;;
    real)
        [ -e "$work/real/metadata.csv" ] || "$python" "$repo/scripts/real_recordings.py" "$work/real"
        advstudio score "$work/real/metadata.csv" --model "$work/instrument-cnn" ;;
    unheard)
        if [ -e "$opl3" ]; then
            [ -e "$work/opl3/metadata.csv" ] \
                || advstudio data render-demo "$work/opl3" --version 2 --font "$opl3" \
                    --per-class 100 --seed 11
            advstudio score "$work/opl3/metadata.csv" --model "$work/instrument-cnn"
        else
            echo "unheard: $opl3 is missing (apt install opl3-soundfont); demo clips only" >&2
        fi
        advstudio score "$repo/resources/demo/metadata.csv" --model "$work/instrument-cnn" ;;
    esac
done
