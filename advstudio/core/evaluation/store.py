"""The SQLite result store shared by the CLI and the GUI.

One row per file x attack x setting x seed x target mode (for one model), written in
transactions of whole chunks, so a study killed at any point and started again finds every
finished row and redoes only the chunk that was in flight. Each run records its configuration,
seed, versions and device.

Several studies may use one store at once (the CLI and the GUI's batch share the default
store). They share the work rather than repeat it:

- The store is in WAL mode (readers never wait for a writer) with a busy timeout, and every
  write is one short `BEGIN IMMEDIATE` transaction, so a writer waits its turn instead of
  failing.
- Before attacking a chunk, a study claims its files in the `claims` table (owner host, pid and
  a random token, and a heartbeat a background thread renews every few seconds), choosing only
  files neither finished nor claimed by a live owner. Writing a chunk's rows releases its
  claims in the same transaction.
- A claim is stale when its owner's process is gone (same host) or its heartbeat is older than
  `STALE_AFTER_S`; stale claims are taken over, so a killed study never blocks the next one.
- Rows are inserted with `INSERT OR IGNORE`: a row's key fixes its result (attacks are seeded
  per file), so if two studies ever attack one file (a claim taken over from an owner that was
  only slow), the first row stays and nothing fails.
- A cell that fails for its input (a file a cluster worker cannot read) is recorded in
  `failures` with its message, and releases its claim. The study that recorded it does not
  claim it again; the next study (a rerun, once the file is fixed) does, and its row replaces
  the failure.
- Studies other than attack batches (transfer, defenses, audits, universal fits; tasks.py)
  keep one row per task in `tasks`: its JSON result, or the message it failed with (a
  failed task is redone by the next run, and its result replaces the failure).
- A study attacks what is free first and only then waits for the files other studies hold, so
  every study ends with the same complete table. Closing the store releases its claims.

Columns added since the first release are nullable and added when a store written by an older
version is opened (`ADDED_COLUMNS`), so old stores keep their rows and resume; their rows hold
NULL there.

A file that is not an SQLite database, a corrupt one, or one another program keeps locked past
the busy timeout is a StoreError (one line), never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

from advstudio.core.errors import AdvStudioError
from advstudio.core.progress import check_cancelled

IN_MEMORY = ":memory:"  # a store that lasts only while it is open: nothing kept
BUSY_TIMEOUT_S = 60.0  # how long a write waits for another study's write to finish
WAL_RETRY_S = 0.02  # between tries to switch a store another process is opening to WAL
HEARTBEAT_S = 5.0  # how often a study renews its claims
STALE_AFTER_S = 60.0  # a claim not renewed for this long belongs to a study that is gone
WAIT_POLL_S = 0.5  # how often a study waiting for another's files looks again

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
    spectral_snr_db REAL,
    survival_rate REAL,
    survival TEXT,
    clean_confidence REAL,
    PRIMARY KEY (model, file, attack, params, seed, target_mode)
);
CREATE TABLE IF NOT EXISTS failures (
    model TEXT NOT NULL,
    file TEXT NOT NULL,
    attack TEXT NOT NULL,
    params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    target_mode TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    owner TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (model, file, attack, params, seed, target_mode)
);
CREATE TABLE IF NOT EXISTS claims (
    model TEXT NOT NULL,
    file TEXT NOT NULL,
    attack TEXT NOT NULL,
    params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    target_mode TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    owner TEXT NOT NULL,
    heartbeat REAL NOT NULL,
    PRIMARY KEY (model, file, attack, params, seed, target_mode)
);
CREATE TABLE IF NOT EXISTS tasks (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    name TEXT NOT NULL,
    result TEXT,
    message TEXT,
    PRIMARY KEY (kind, key)
);
"""
# Result columns newer than the first store layout: (name, SQL type), added on open when missing.
ADDED_COLUMNS = (
    ("spectral_snr_db", "REAL"),
    ("survival_rate", "REAL"),
    ("survival", "TEXT"),
    ("clean_confidence", "REAL"),
)


def default_store_path() -> Path:
    """The result store the CLI and the GUI share unless told otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "advstudio" / "results.sqlite"


class StoreError(AdvStudioError):
    pass


class SettingKey(NamedTuple):
    """What identifies a row apart from its file: one attack setting, seed and target mode
    against one model."""

    model: str
    attack: str
    params: str
    seed: int
    target_mode: str


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
    spectral_snr_db: float | None = None  # attacks bounded in the magnitude domain only
    # Attacks with expectation over transformation: the share of fresh transform draws of the
    # export after which the goal holds (`survived` is then this share reaching the rate the
    # attack requires).
    survival_rate: float | None = None
    # A survival report's conditions (JSON {condition: share of fresh draws keeping the goal}),
    # measured on the export of each adversarial example.
    survival: str | None = None
    # The clean file's top class probability, as the attack saw it (the study's clean
    # confidence comes from its rows; NULL in rows of older versions).
    clean_confidence: float | None = None

    @property
    def key(self) -> tuple[str, str, str, str, int, str]:
        return (self.model, self.file, self.attack, self.params, self.seed, self.target_mode)

    @property
    def setting(self) -> SettingKey:
        return SettingKey(self.model, self.attack, self.params, self.seed, self.target_mode)


_COLUMNS = [f.name for f in fields(ResultRow)]


def canonical_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


_SETTING_MATCH = "model=? AND attack=? AND params=? AND seed=? AND target_mode=?"


@contextlib.contextmanager
def _store_errors(path: Path) -> Iterator[None]:
    """SQLite's failures as one-line StoreErrors naming the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreError(
                f"{path}: the result store stayed locked by another program for "
                f"{BUSY_TIMEOUT_S:.0f} s; try again when it has finished"
            ) from None
        raise StoreError(f"{path}: not a usable result store ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a usable result store ({exc})") from None


def _connect(path: Path) -> sqlite3.Connection:
    """Autocommit mode: transactions are explicit `BEGIN IMMEDIATE` blocks. Switching a new
    store to WAL fails at once, without the busy timeout, while another process opens it too
    (one of two studies started together on a new --db failed about one time in ten), so the
    switch is tried again until the timeout."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return connection
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                connection.close()
                raise
            time.sleep(WAL_RETRY_S)


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Bring a store written by an older version up to today's results table."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(results)")}
    for name, sql_type in ADDED_COLUMNS:
        if name not in present:
            connection.execute(f"ALTER TABLE results ADD COLUMN {name} {sql_type}")


def _process_is_gone(host: str, pid: int) -> bool:
    """True only when the owner ran on this host and no process with its pid exists (POSIX
    only: elsewhere the heartbeat alone tells)."""
    if host != socket.gethostname() or os.name != "posix":
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        pass
    return False


class ResultStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.owner = uuid.uuid4().hex
        self._heartbeat: threading.Thread | None = None
        self._closing = threading.Event()
        with _store_errors(self.path):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create its folder ({exc})") from None
            self.connection = _connect(self.path)
            with self._transaction():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.connection.execute(statement)
                _add_missing_columns(self.connection)

    def close(self) -> None:
        """Release this store's claims (other studies take those files on) and disconnect."""
        self._closing.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with contextlib.suppress(StoreError), self._transaction():
            self.connection.execute("DELETE FROM claims WHERE owner=?", (self.owner,))
        self.connection.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that takes the write lock at once (waiting up to the busy
        timeout), so it can never fail half-way for a lock another study holds."""
        with _store_errors(self.path):
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")

    def start_run(
        self, model: str, config: dict[str, Any], versions: dict[str, str], device: str
    ) -> int:
        with self._transaction() as connection:
            cursor = connection.execute(
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
        with _store_errors(self.path):
            rows = self.connection.execute(
                f"SELECT file FROM results WHERE {_SETTING_MATCH}",
                (model, attack, params, seed, target_mode),
            ).fetchall()
        return {r[0] for r in rows}

    def computed_on(self, key: SettingKey, files: Iterable[str]) -> dict[str, int]:
        """How many of a setting's results for `files` each device computed, as the runs that
        wrote them recorded it: a study resumed on another machine reports results that this
        run did not compute."""
        wanted = set(files)
        with _store_errors(self.path):
            rows = self.connection.execute(
                "SELECT file, (SELECT device FROM runs WHERE runs.run_id = results.run_id) "
                f"FROM results WHERE {_SETTING_MATCH}",
                tuple(key),
            ).fetchall()
        return dict(Counter(device for file, device in rows if file in wanted))

    def claim_chunks(
        self,
        key: SettingKey,
        files: Sequence[str],
        size: int,
        wait: bool,
        cancel: threading.Event | None = None,
    ) -> Iterator[list[str]]:
        """Chunks of up to `size` of `files` (in their order), each claimed for this store
        before it is yielded; write() releases them. Ends when no file is left to claim, or,
        with `wait`, when every file is finished (waiting for those other live studies hold,
        and taking over their claims when they die)."""
        while True:
            chunk, held_elsewhere = self._claim(key, files, size)
            if chunk:
                yield chunk
            elif held_elsewhere and wait:
                check_cancelled(cancel)
                time.sleep(WAIT_POLL_S)
            else:
                return

    def _claim(self, key: SettingKey, files: Sequence[str], size: int) -> tuple[list[str], int]:
        """Claim the first `size` files neither finished nor claimed by a live study (this
        one included); also return how many of `files` other live studies hold."""
        now = time.time()
        with self._transaction() as connection:
            finished = {
                r[0]
                for r in connection.execute(f"SELECT file FROM results WHERE {_SETTING_MATCH}", key)
            }
            live_owners = {
                file: owner
                for file, host, pid, owner, heartbeat in connection.execute(
                    f"SELECT file, host, pid, owner, heartbeat FROM claims WHERE {_SETTING_MATCH}",
                    key,
                )
                if owner == self.owner
                or (now - heartbeat < STALE_AFTER_S and not _process_is_gone(host, pid))
            }
            finished |= {
                r[0]
                for r in connection.execute(
                    f"SELECT file FROM failures WHERE {_SETTING_MATCH} AND owner=?",
                    (*key, self.owner),
                )
            }  # failed here: not claimed again by this study
            chunk = [f for f in files if f not in finished and f not in live_owners][:size]
            connection.executemany(
                "INSERT OR REPLACE INTO claims (model, file, attack, params, seed, target_mode, "
                "host, pid, owner, heartbeat) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (key.model, f, key.attack, key.params, key.seed, key.target_mode)
                    + (socket.gethostname(), os.getpid(), self.owner, now)
                    for f in chunk
                ],
            )
        if chunk:
            self._start_heartbeat()
        held_elsewhere = [
            f for f in files if f not in finished and live_owners.get(f, self.owner) != self.owner
        ]
        return chunk, len(held_elsewhere)

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(
                target=self._renew_claims, name="advstudio-store-heartbeat", daemon=True
            )
            self._heartbeat.start()

    def _renew_claims(self) -> None:
        """Keep this store's claims fresh on a connection of its own while the study works
        (a failed renewal only lets the claims go stale sooner)."""
        with contextlib.suppress(sqlite3.Error), contextlib.closing(_connect(self.path)) as db:
            while not self._closing.wait(HEARTBEAT_S):
                with contextlib.suppress(sqlite3.Error):
                    db.execute(
                        "UPDATE claims SET heartbeat=? WHERE owner=?", (time.time(), self.owner)
                    )

    def write(self, run_id: int, rows: Iterable[ResultRow]) -> None:
        """All rows or none (one transaction); releases this store's claims on their files.
        A row already there (another study attacked the same file) stays as it was."""
        rows = list(rows)
        placeholders = ",".join("?" * (len(_COLUMNS) + 1))
        with self._transaction() as connection:
            connection.executemany(
                f"INSERT OR IGNORE INTO results ({','.join(_COLUMNS)}, run_id) "
                f"VALUES ({placeholders})",
                [(*astuple_row(r), run_id) for r in rows],
            )
            connection.executemany(
                f"DELETE FROM claims WHERE {_SETTING_MATCH} AND file=? AND owner=?",
                [(*r.setting, r.file, self.owner) for r in rows],
            )
            connection.executemany(  # a failure a rerun has now redone
                f"DELETE FROM failures WHERE {_SETTING_MATCH} AND file=?",
                [(*r.setting, r.file) for r in rows],
            )

    def record_failures(
        self, run_id: int, key: SettingKey, failed: Sequence[tuple[str, str]]
    ) -> None:
        """Record cells that failed for their input as (file, message), releasing their
        claims; this study does not claim them again."""
        with self._transaction() as connection:
            connection.executemany(
                "INSERT OR REPLACE INTO failures (model, file, attack, params, seed, "
                "target_mode, run_id, owner, message) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (key.model, file, key.attack, key.params, key.seed, key.target_mode)
                    + (run_id, self.owner, message)
                    for file, message in failed
                ],
            )
            connection.executemany(
                f"DELETE FROM claims WHERE {_SETTING_MATCH} AND file=? AND owner=?",
                [(*key, file, self.owner) for file, _ in failed],
            )

    def failures(self, key: SettingKey) -> dict[str, str]:
        """The recorded failures of one setting: {file: message}."""
        with _store_errors(self.path):
            rows = self.connection.execute(
                f"SELECT file, message FROM failures WHERE {_SETTING_MATCH}", key
            ).fetchall()
        return dict(rows)

    def task_results(self, kind: str, keys: Sequence[str]) -> dict[str, Any]:
        """{key: result} of the tasks of `keys` that finished (failed ones are not, nor a
        row that holds no result this version wrote: damaged or made by hand, it is redone)."""
        from advstudio.core.evaluation.tasks import loads

        wanted, found = set(keys), {}
        with _store_errors(self.path):
            cursor = self.connection.execute(
                "SELECT key, result FROM tasks WHERE kind=? AND result IS NOT NULL", (kind,)
            )
            for key, result in cursor:
                if key in wanted:
                    with contextlib.suppress(ValueError, TypeError, RecursionError):
                        found[key] = loads(result)
        return found

    def write_task(self, run_id: int, kind: str, key: str, name: str, result: str) -> None:
        """One finished task's JSON result (replacing a failure an earlier run recorded)."""
        with self._transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO tasks (kind, key, run_id, name, result, message) "
                "VALUES (?,?,?,?,?,NULL)",
                (kind, key, run_id, name, result),
            )

    def record_task_failure(
        self, run_id: int, kind: str, key: str, name: str, message: str
    ) -> None:
        """A task that failed for its input; a result already there stays."""
        with self._transaction() as connection:
            connection.execute(
                "INSERT INTO tasks (kind, key, run_id, name, result, message) "
                "VALUES (?,?,?,?,NULL,?) ON CONFLICT (kind, key) DO UPDATE SET "
                "run_id=excluded.run_id, message=excluded.message WHERE result IS NULL",
                (kind, key, run_id, name, message),
            )

    def task_failures(self, kind: str) -> dict[str, str]:
        """{key: message} of the tasks of `kind` that failed and were not redone since."""
        with _store_errors(self.path):
            rows = self.connection.execute(
                "SELECT key, message FROM tasks WHERE kind=? AND result IS NULL", (kind,)
            ).fetchall()
        return dict(rows)

    def rows(
        self, model: str, attack: str, params: str, seed: int, target_mode: str
    ) -> list[ResultRow]:
        with _store_errors(self.path):
            cursor = self.connection.execute(
                f"SELECT {','.join(_COLUMNS)} FROM results WHERE {_SETTING_MATCH} ORDER BY file",
                (model, attack, params, seed, target_mode),
            )
            return [row_from_tuple(r) for r in cursor]


READ_BUSY_TIMEOUT_S = 1.0  # a reader following a study never waits long for its writer


class StoreReader:
    """A store opened read-only, to follow a study another process writes: it never writes
    (no schema, no claims), never holds the writer up (WAL readers do not block), and gives
    up on a lock after READ_BUSY_TIMEOUT_S instead of the writers' minute. A file that is not
    a result store is a StoreError."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"{self.path}: no such result store")
        with _store_errors(self.path):
            self.connection = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=READ_BUSY_TIMEOUT_S,
                isolation_level=None,
            )
            tables = {r[0] for r in self.connection.execute("SELECT name FROM sqlite_master")}
        if not {"runs", "results"} <= tables:
            self.connection.close()
            raise StoreError(f"{self.path}: not an advstudio result store (no runs or results)")
        self.has_claims, self.has_failures = "claims" in tables, "failures" in tables

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The writer's reading queries, word for word (they use only `path` and `connection`).
    finished_files = ResultStore.finished_files
    rows = ResultStore.rows

    def failures(self, key: SettingKey) -> dict[str, str]:
        return ResultStore.failures(self, key) if self.has_failures else {}  # type: ignore[arg-type]

    def latest_run(self) -> tuple[int, str, dict[str, Any]] | None:
        """(run id, model fingerprint, configuration) of the study that started last."""
        with _store_errors(self.path):
            row = self.connection.execute(
                "SELECT run_id, model, config FROM runs ORDER BY run_id DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def running_files(self, key: SettingKey) -> set[str]:
        """The files of one setting that a live study holds (fresh heartbeat, owner alive)."""
        if not self.has_claims:
            return set()
        now = time.time()
        with _store_errors(self.path):
            claims = self.connection.execute(
                f"SELECT file, host, pid, heartbeat FROM claims WHERE {_SETTING_MATCH}", key
            ).fetchall()
        return {
            file
            for file, host, pid, heartbeat in claims
            if now - heartbeat < STALE_AFTER_S and not _process_is_gone(host, pid)
        }


def astuple_row(row: ResultRow) -> tuple[Any, ...]:
    return tuple(asdict(row)[c] for c in _COLUMNS)


def row_from_tuple(values: tuple[Any, ...]) -> ResultRow:
    data = dict(zip(_COLUMNS, values, strict=True))
    data["success"], data["survived"] = bool(data["success"]), bool(data["survived"])
    return ResultRow(**data)
