"""The window's settings in a JSON file, read without running anything.

Not QSettings: PySide6 stores Python objects in a QSettings file as pickles
(`@Variant(...PySide::PyObjectWrapper...)`) and `QSettings.value` unpickles them, so a crafted
`advstudio.conf` would run code when the window opens. Here values are JSON (strings, numbers,
lists, mappings) or bytes such as window geometry, kept as base64.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QStandardPaths

from advstudio.core.atomic import write_atomically

BYTES_KEY = "base64"
log = logging.getLogger("advstudio")


def default_settings_path() -> Path:
    """settings.json under the user's configuration folder ($XDG_CONFIG_HOME on Linux)."""
    config = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericConfigLocation)
    return Path(config) / "advstudio" / "settings.json"


def _to_json(value: Any) -> Any:
    if isinstance(value, QByteArray):
        value = value.data()
    if isinstance(value, (bytes, bytearray)):
        return {BYTES_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool, dict)):
        return value
    raise TypeError(f"settings hold JSON values and bytes, not {type(value).__name__}")


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {BYTES_KEY}:
        try:
            return QByteArray(base64.b64decode(value[BYTES_KEY], validate=True))
        except ValueError:
            return None
    return value


def _json_kind(value: Any) -> type | tuple[type, ...]:
    if isinstance(value, (list, tuple)):
        return (list, tuple)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (int, float)
    return type(_from_json(_to_json(value)))


class JsonSettings:
    """The part of QSettings' interface the window uses: `value` and `setValue`."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_settings_path()
        self.values: dict[str, Any] = {}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("%s: unreadable settings, starting from defaults (%s)", self.path, exc)
            return
        if isinstance(loaded, dict):
            self.values = loaded

    def value(self, key: str, default: Any = None, type: type | None = None) -> Any:  # noqa: A002
        """The stored value, or `default` when there is none or (in a hand-edited file) it is
        of another kind than `default`."""
        value = _from_json(self.values.get(key, default))
        if default is not None and not isinstance(value, _json_kind(default)):
            return default
        if type is not None and value is not None:
            try:
                return type(value)
            except (TypeError, ValueError):
                return default
        return value

    def setValue(self, key: str, value: Any) -> None:  # noqa: N802 (QSettings' name)
        self.values[key] = _to_json(value)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self.values, indent=1)
            write_atomically(self.path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        except OSError as exc:  # a read-only home must not stop the application
            log.warning("%s: cannot save settings (%s)", self.path, exc)
