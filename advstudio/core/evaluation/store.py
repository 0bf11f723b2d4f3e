"""The SQLite result store shared by the CLI and the GUI.

One row per file x attack x setting x seed x target mode (for one model), written in
transactions of whole chunks, so a study killed at any point and started again finds every
finished row and redoes only the chunk that was in flight. Each run records its configuration,
seed, versions and device.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from advstudio.core.errors import AdvStudioError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    model TEXT NOT NULL,
    config TEXT NOT NULL,
    versions TEXT NOT NULL,
    device TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    model TEXT NOT NULL,
    file TEXT NOT NULL,
    attack TEXT NOT NULL,
    params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    target_mode TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    label INTEGER,
    orig_pred INTEGER NOT NULL,
    target INTEGER,
    success INTEGER NOT NULL,
    survived INTEGER NOT NULL,
    new_pred INTEGER NOT NULL,
    iterations INTEGER NOT NULL,
    snr_db REAL NOT NULL,
    snr_db_untrimmed REAL NOT NULL,
    linf REAL NOT NULL,
    confidence REAL NOT NULL,
    PRIMARY KEY (model, file, attack, params, seed, target_mode)
);
"""


def default_store_path() -> Path:
    """The result store the CLI and the GUI share unless told otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "advstudio" / "results.sqlite"


class StoreError(AdvStudioError):
    pass


@dataclass(frozen=True)
class ResultRow:
    """One attacked file. `success` is judged on the float waveform; `survived`, `new_pred`,
    `confidence` and the SNRs on the exported 16-bit file re-loaded and re-classified."""

    model: str
    file: str
    attack: str
    params: str  # canonical JSON of the attack's parameters
    seed: int
    target_mode: str
    label: int | None
    orig_pred: int
    target: int | None
    success: bool
    survived: bool
    new_pred: int
    iterations: int
    snr_db: float
    snr_db_untrimmed: float
    linf: float
    confidence: float

    @property
    def key(self) -> tuple[str, str, str, str, int, str]:
        return (self.model, self.file, self.attack, self.params, self.seed, self.target_mode)


_COLUMNS = [f.name for f in fields(ResultRow)]


def canonical_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


class ResultStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(self.path)
            self.connection.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable result store ({exc})") from None

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_run(
        self, model: str, config: dict[str, Any], versions: dict[str, str], device: str
    ) -> int:
        with self.connection:
            cursor = self.connection.execute(
                "INSERT INTO runs (started, model, config, versions, device) VALUES (?,?,?,?,?)",
                (
                    time.time(),
                    model,
                    json.dumps(config, sort_keys=True),
                    json.dumps(versions),
                    device,
                ),
            )
        return int(cursor.lastrowid)

    def finished_files(
        self, model: str, attack: str, params: str, seed: int, target_mode: str
    ) -> set[str]:
        rows = self.connection.execute(
            "SELECT file FROM results WHERE model=? AND attack=? AND params=? AND seed=? "
            "AND target_mode=?",
            (model, attack, params, seed, target_mode),
        )
        return {r[0] for r in rows}

    def write(self, run_id: int, rows: Iterable[ResultRow]) -> None:
        """All rows or none (one transaction)."""
        placeholders = ",".join("?" * (len(_COLUMNS) + 1))
        with self.connection:
            self.connection.executemany(
                f"INSERT INTO results ({','.join(_COLUMNS)}, run_id) VALUES ({placeholders})",
                [(*astuple_row(r), run_id) for r in rows],
            )

    def rows(
        self, model: str, attack: str, params: str, seed: int, target_mode: str
    ) -> list[ResultRow]:
        cursor = self.connection.execute(
            f"SELECT {','.join(_COLUMNS)} FROM results WHERE model=? AND attack=? AND params=? "
            "AND seed=? AND target_mode=? ORDER BY file",
            (model, attack, params, seed, target_mode),
        )
        return [row_from_tuple(r) for r in cursor]


def astuple_row(row: ResultRow) -> tuple[Any, ...]:
    return tuple(asdict(row)[c] for c in _COLUMNS)


def row_from_tuple(values: tuple[Any, ...]) -> ResultRow:
    data = dict(zip(_COLUMNS, values, strict=True))
    data["success"], data["survived"] = bool(data["success"]), bool(data["survived"])
    return ResultRow(**data)
