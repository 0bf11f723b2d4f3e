"""Entry point of the PyInstaller bundle: point advstudio at the bundled resources."""

import os
import sys
from pathlib import Path

if getattr(sys, "frozen", False):
    os.environ.setdefault("ADVSTUDIO_RESOURCES", str(Path(sys._MEIPASS) / "resources"))

from advstudio.cli import main  # noqa: E402

raise SystemExit(main())
