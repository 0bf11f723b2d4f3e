"""A null ALSA output device for tests with real PortAudio streams.

Plain `type null` swallows samples far faster than real time, so the default PCM pipes them
through ALSA's `file` plugin into a small reader that consumes them at the real rate and keeps
a capture. ALSA reads its configuration once per process: use the environment in a child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SYSTEM_ALSA_CONF = "/usr/share/alsa/alsa.conf"

# Reads the piped PCM bytes no faster than real time and appends them to a capture file.
PACER = """\
import fcntl, os, sys, time
rate, capture = float(sys.argv[1]), sys.argv[2]
try:
    fcntl.fcntl(0, fcntl.F_SETPIPE_SZ, 4096)  # a small pipe: a short start-up burst
except OSError:
    pass
start, total = None, 0
with open(capture, "ab") as sink:
    while chunk := os.read(0, 4096):
        start = time.monotonic() if start is None else start
        total += len(chunk)
        sink.write(chunk)
        ahead = total / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
"""

# The stock configuration, then a default PCM that converts everything to mono float32 at
# `rate` and hands it to the pacer through the `file` plugin over a null slave.
ALSA_CONF = """\
<{system_conf}>
pcm.!default {{ type plug slave {{ pcm "paced" format FLOAT_LE channels 1 rate {rate} }} }}
pcm.paced {{ type file slave.pcm "null" format raw file "|{python} {pacer} {bps} {capture}" }}
"""


def paced_null_alsa_env(folder: Path, rate: int) -> tuple[dict[str, str], Path]:
    """(environment for a child process, path of the capture file it will write)."""
    pacer, capture, conf = folder / "pacer.py", folder / "capture.f32", folder / "asound.conf"
    pacer.write_text(PACER)
    conf.write_text(
        ALSA_CONF.format(
            system_conf=SYSTEM_ALSA_CONF,
            rate=rate,
            python=sys.executable,
            pacer=pacer,
            bps=rate * 4,
            capture=capture,
        )
    )
    return {**os.environ, "ALSA_CONFIG_PATH": str(conf)}, capture


def run_json_child(script: str, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run `script` in a child Python (repository root, environment `env`) and return the JSON
    object it prints on its last line; a failed child fails the test with its stderr."""
    child = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.strip().splitlines()[-1])
