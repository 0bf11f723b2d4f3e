#!/usr/bin/env bash
# Shared set-up for scripts/start.sh and scripts/test.sh: system packages (when we may install
# them), then a virtual environment in .venv with advstudio installed in editable mode.
# Usage: source scripts/setup.sh EXTRAS   (EXTRAS: "" for the product, "test" for the tests)
set -euo pipefail
extras="${1:-}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# PortAudio for playback, libsndfile for audio files, the libraries Qt's xcb plugin loads
# (gui/app.py names the same ones when they are missing), FluidSynth and SoundFonts (and
# TiMidity++ with FreePats) for rendering the demo set.
apt_packages=(libportaudio2 libsndfile1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4
              libxcb-keysyms1 libxcb-shape0 libegl1 libgl1 libxkbcommon0 libfontconfig1
              libdbus-1-3 libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont-small
              csound-soundfont avldrums.lv2-soundfont timidity freepats)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); elif sudo -n true 2>/dev/null; then sudo_cmd=(sudo -n);
    else sudo_cmd=(none); fi
    if [ "${sudo_cmd[0]:-}" = none ]; then
        echo "advstudio: not root and no sudo; install these yourself: apt-get install ${missing[*]}" >&2
    else
        echo "advstudio: installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        "${sudo_cmd[@]}" apt-get update -qq || true
        "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

venv="$repo/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
spec="."; [ -n "$extras" ] && spec=".[$extras]"
stamp="$venv/.installed-$(cat "$repo/pyproject.toml" | sha1sum | cut -c1-12)-${extras:-base}"
if [ ! -e "$stamp" ]; then
    echo "advstudio: installing Python packages into .venv (torch+torchaudio take about 4.6 GB)"
    "$venv/bin/python" -m pip install -q --upgrade pip
    (cd "$repo" && "$venv/bin/python" -m pip install -q -e "$spec")
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
