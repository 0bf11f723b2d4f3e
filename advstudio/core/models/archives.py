"""What a model file is, and whether loading it could run code, found by reading its bytes and
its zip directory: nothing here unpickles, evaluates or imports what a file holds.

torch.export programs (`.pt2`) need the most care. `torch.export.load` unpickles a weight or
constant whose config says `use_pickle`, a custom object, a legacy weights file, and (when a
safe load fails) the example inputs; it loads compiled AOTInductor libraries; it hands every
shape expression to `sympy.sympify`, which evaluates Python; it `exec`s the program's guards
and writes parameter names into generated Python. `checked_export_archive` accepts only a
program made of raw tensors, arithmetic shape expressions, comparison guards and plain names,
and returns a copy without the pickled example inputs, so what torch reads is what was checked.
"""

from __future__ import annotations

import ast
import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from advstudio.core.errors import ModelError

FileKind = Literal["export", "torchscript", "torch-save"]

AUDIO_SIGNATURES = (
    (0, b"RIFF", 8, b"WAVE"),
    (0, b"FORM", 8, b"AIFF"),
    (0, b"FORM", 8, b"AIFC"),
    (0, b"fLaC", 0, b""),
    (0, b"OggS", 0, b""),
    (0, b"ID3", 0, b""),
    (0, b"caff", 0, b""),
    (4, b"ftyp", 0, b""),
)
MP3_FRAME_STARTS = (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xfa")

# Entries of an archive written by torch.export.save for one program named "model", relative to
# the archive's top folder. Anything else (AOTInductor libraries, legacy pickled weights, other
# programs) is refused.
EXPORT_ENTRIES = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/model\.json|data/sample_inputs/model\.pt|extra/[^/]+"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+)"
)
SAMPLE_INPUTS = "data/sample_inputs/model.pt"
PAYLOAD_CONFIGS = {
    "data/weights/model_weights_config.json": "weight_",
    "data/constants/model_constants_config.json": "tensor_",
}

# Parameter, buffer and constant names end up in generated Python (`getattr(self, "name")`).
PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
PLAIN_LITERAL = re.compile(r"[A-Za-z0-9_.+-]+")
NAME_KEYS = ("parameter_name", "buffer_name", "tensor_constant_name", "custom_obj_name", "fqn")

# What sympy.srepr writes for shape expressions; each is a class that only builds a value.
SYMPY_NAMES = frozenset(
    "Symbol Integer Rational Float Add Mul Pow Mod Max Min Abs floor ceiling "
    "Eq Ne Lt Le Gt Ge Equality Unequality StrictLessThan StrictGreaterThan LessThan "
    "GreaterThan And Or Not true false BooleanTrue BooleanFalse Infinity NegativeInfinity oo "
    "Piecewise ExprCondPair Half One Zero NegativeOne "
    "FloorDiv ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt CeilDiv LShift "
    "RShift PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator "
    "TruncToFloat TruncToInt RoundToInt RoundDecimal ToFloat Identity".split()
)
# What a guard may call: shape queries on an input, and a little arithmetic.
GUARD_METHODS = frozenset({"size", "stride", "storage_offset", "dim", "numel"})
GUARD_FUNCTIONS = frozenset({"max", "min", "abs", "int", "float"})
GUARD_MODULES = {
    "math": frozenset({"floor", "ceil", "trunc", "sqrt"}),
    "torch": frozenset({"sym_float", "sym_int", "sym_max", "sym_min", "sym_not", "sym_sqrt"}),
}
OPERATORS = (ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.Load)


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read(size)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _is_audio(head: bytes) -> bool:
    for offset, magic, offset2, magic2 in AUDIO_SIGNATURES:
        if head[offset : offset + len(magic)] == magic and (
            not magic2 or head[offset2 : offset2 + len(magic2)] == magic2
        ):
            return True
    return head.startswith(MP3_FRAME_STARTS)


def _is_text(head: bytes) -> bool:
    if not head or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut at the end of the sample
    return True


def _records(archive: zipfile.ZipFile) -> dict[str, str] | None:
    """Entry names relative to the archive's single top folder (how torch reads them), mapped
    to their full names; None when the entries do not share one top folder."""
    records: dict[str, dict[str, str]] = {}
    for name in archive.namelist():
        top, _, rest = name.partition("/")
        if not rest:
            return None
        records.setdefault(top, {})[rest] = name
    return next(iter(records.values())) if len(records) == 1 else None


def identify_model_file(path: Path) -> FileKind:
    """The kind of model file `path` holds, or a ModelError saying what it is instead
    (an audio file, a text file, a zip archive of something else)."""
    head = _head(path)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                records = _records(archive) or {}
                if "archive_format" in records:
                    return "export"
                if "data.pkl" in records:
                    code = any(name.startswith("code/") for name in records)
                    return "torchscript" if code else "torch-save"
        except (zipfile.BadZipFile, OSError):
            raise ModelError(f"{path}: a damaged zip archive, not a loadable model") from None
        raise ModelError(
            f"{path}: a zip archive that is neither a TorchScript file nor a torch.export program"
        )
    if head.startswith(b"\x80"):  # torch.save's legacy format starts with a pickled number
        return "torch-save"
    if _is_audio(head):
        raise ModelError(f"{path}: an audio file, not a model")
    if _is_text(head):
        raise ModelError(f"{path}: a text file, not a model")
    if not head:
        raise ModelError(f"{path}: an empty file, not a model")
    raise ModelError(f"{path}: not a model file (neither TorchScript, torch.export nor torch.save)")


def _refuse(path: Path, problem: str) -> ModelError:
    return ModelError(f"{path}: {problem}; refused, loading it could run code")


def _walk(document: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a JSON document (without recursion: it may be deep)."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            yield from value.items()
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def _shape_expression_is_plain(text: str) -> bool:
    """True for an expression sympy can build without calling anything but SYMPY_NAMES, with
    strings only as the names of symbols and the digits of floats (other classes would
    `sympify` a string, that is, evaluate it)."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    literal_strings = {
        id(arg)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("Symbol", "Float")
        for arg in node.args[:1]
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in SYMPY_NAMES:
                return False
        elif isinstance(node, ast.keyword):
            if node.arg is None or not isinstance(node.value, ast.Constant):
                return False
        elif isinstance(node, ast.Name):
            if node.id not in SYMPY_NAMES:
                return False
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                if id(node) not in literal_strings or not PLAIN_LITERAL.fullmatch(node.value):
                    return False
            elif not isinstance(node.value, (int, float)):
                return False
        elif not isinstance(
            node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare)
        ) and not isinstance(node, OPERATORS):
            return False
    return True


def _guard_is_plain(text: str) -> bool:
    """True for a comparison of input shapes: `L['wave'].size()[0] == L['lengths'].size()[0]`."""
    if '"' in text or "\\" in text or "\n" in text:
        return False  # torch pastes the guard into a string literal and a line of code
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            module = node.value.id if isinstance(node.value, ast.Name) else None
            if module in GUARD_MODULES:
                if node.attr not in GUARD_MODULES[module]:
                    return False
            elif node.attr not in GUARD_METHODS:
                return False
        elif isinstance(node, ast.Name):
            if node.id != "L" and node.id not in GUARD_FUNCTIONS and node.id not in GUARD_MODULES:
                return False
        elif isinstance(node, ast.Constant):
            plain_name = isinstance(node.value, str) and node.value.isidentifier()
            if not (plain_name or isinstance(node.value, (int, float))):
                return False
        elif isinstance(node, ast.Call):
            if node.keywords:
                return False
        elif not isinstance(
            node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Subscript)
        ) and not isinstance(node, OPERATORS):
            return False
    return True


def _read_json(archive: zipfile.ZipFile, name: str, path: Path) -> Any:
    try:
        return json.loads(archive.read(name))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ModelError(f"{path}: {name} in the archive is not valid JSON") from None


def _check_payload_config(config: Any, prefix: str, path: Path) -> None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise ModelError(f"{path}: a torch.export program with a malformed weights config")
    for name, meta in entries.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise _refuse(path, f"tensor {name!r} is stored as a pickle, not as raw data")
        if not str(meta.get("path_name", "")).startswith(prefix):
            raise _refuse(path, f"constant {name!r} is a pickled custom object")
        if not PLAIN_NAME.fullmatch(name):
            raise _refuse(path, f"a tensor is named {name[:60]!r}, not a plain dotted name")


def _check_program(program: Any, path: Path) -> None:
    if not isinstance(program, dict):
        raise ModelError(f"{path}: a torch.export program whose model.json is not an object")
    for key, value in _walk(program):
        if key == "expr_str" and not _shape_expression_is_plain(str(value)):
            raise _refuse(path, f"a shape expression is not plain arithmetic ({str(value)[:60]!r})")
        if key in NAME_KEYS and value and not PLAIN_NAME.fullmatch(str(value)):
            raise _refuse(path, f"a name in the program is not plain ({str(value)[:60]!r})")
        if key == "target" and isinstance(value, str) and value.startswith("#"):
            raise _refuse(path, f"the program calls an extension operator ({value[:60]!r})")
    guards = program.get("guards_code") or []
    if not isinstance(guards, list):
        raise ModelError(f"{path}: a torch.export program with malformed guards")
    for guard in guards:
        if not isinstance(guard, str) or not _guard_is_plain(guard):
            raise _refuse(path, f"a shape guard is not a plain comparison ({str(guard)[:60]!r})")


def checked_export_archive(path: Path) -> io.BytesIO:
    """The torch.export program at `path`, checked so that loading it cannot unpickle or run
    code, as an in-memory archive without its (pickled) example inputs; ModelError otherwise."""
    try:
        data = path.read_bytes()
        archive = zipfile.ZipFile(io.BytesIO(data))
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except zipfile.BadZipFile:
        raise ModelError(f"{path}: a damaged zip archive, not a loadable model") from None
    with archive:
        records = _records(archive)
        if records is None:
            raise ModelError(f"{path}: a zip archive that is not a torch.export program")
        for name in records:
            if not EXPORT_ENTRIES.fullmatch(name):
                raise _refuse(path, f"the archive holds {name!r}, which a plain program does not")
        if "archive_format" not in records or archive.read(records["archive_format"]) != b"pt2":
            raise ModelError(f"{path}: not a torch.export archive this PyTorch can read")
        if "models/model.json" not in records:
            raise ModelError(f"{path}: a torch.export archive without a program named 'model'")
        for name, prefix in PAYLOAD_CONFIGS.items():
            if name in records:
                _check_payload_config(_read_json(archive, records[name], path), prefix, path)
        _check_program(_read_json(archive, records["models/model.json"], path), path)
        copy = io.BytesIO()
        with zipfile.ZipFile(copy, "w", zipfile.ZIP_STORED) as out:
            for name, full_name in records.items():
                out.writestr(full_name, b"" if name == SAMPLE_INPUTS else archive.read(full_name))
    copy.seek(0)
    return copy
