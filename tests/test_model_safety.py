"""Nothing a user loads may run code: crafted model files of every kind advstudio reads are
refused with one line, and the command hidden in each never runs (its marker file stays absent).
Files that are not models at all are named for what they are."""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from advstudio.cli import main
from advstudio.core.errors import ModelError
from advstudio.core.models import load_model
from tests.conftest import tone

LABELS = ["a", "b", "c"]


class TwoInputs(torch.nn.Module):
    """Fits the contract: forward(wave [B, T], lengths [B]) -> logits [B, 3]."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 3)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        level = wave.abs().sum(dim=1, keepdim=True) / lengths[:, None].float()
        return self.linear(level)


class RunsCommand:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def touch_command(marker: Path) -> str:
    """A Python expression that creates `marker` (no dots or quotes of its own kind needed)."""
    return f"__import__('os').system('touch {marker}')"


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    """A genuine exported program with a dynamic batch (so it carries a guard) and length."""
    torch.manual_seed(0)
    batch, samples = torch.export.Dim("batch", max=1024), torch.export.Dim("samples", max=10**7)
    program = torch.export.export(
        TwoInputs(),
        (torch.randn(2, 4000), torch.tensor([4000, 3000])),
        dynamic_shapes={"wave": {0: batch, 1: samples}, "lengths": {0: batch}},
    )
    path = tmp_path / "good.pt2"
    torch.export.save(program, path)
    (tmp_path / "labels.txt").write_text("\n".join(LABELS))
    return path


def rewrite(source: Path, target: Path, edit: Callable[[str, bytes], bytes | None]) -> Path:
    """Copy a zip archive entry by entry through `edit(name, data)`; None drops the entry."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = edit(name, old.read(name))
            if data is not None:
                new.writestr(name, data)
    return target


def edit_json(name: str, data: bytes, suffix: str, change: Callable[[dict], None]) -> bytes:
    if not name.endswith(suffix):
        return data
    document = json.loads(data)
    change(document)
    return json.dumps(document).encode()


def with_pickled_weight(source: Path, target: Path, marker: Path) -> Path:
    """The weight `linear.weight` replaced by a pickle that runs a command when loaded."""

    def edit(name: str, data: bytes) -> bytes:
        if name.endswith("data/weights/weight_0"):
            buffer = io.BytesIO()
            torch.save(RunsCommand(marker), buffer)
            return buffer.getvalue()
        return edit_json(
            name,
            data,
            "model_weights_config.json",
            lambda doc: doc["config"]["linear.weight"].update(use_pickle=True),
        )

    return rewrite(source, target, edit)


def with_guard(source: Path, target: Path, marker: Path) -> Path:
    """A guard (Python that torch `exec`s and runs on every call) that also runs a command."""
    guard = f"L['wave'].size()[0] == L['lengths'].size()[0] and {touch_command(marker)} == 0"

    def change(program: dict) -> None:
        program["guards_code"] = [guard]

    return rewrite(source, target, lambda n, d: edit_json(n, d, "models/model.json", change))


def with_shape_expression(source: Path, target: Path, marker: Path) -> Path:
    """A shape expression (which torch hands to sympy.sympify, that is, eval) running a command."""

    def edit(name: str, data: bytes) -> bytes:
        if not name.endswith("models/model.json"):
            return data
        text = data.decode()
        start = text.index('"expr_str": "') + len('"expr_str": "')
        end = text.index('"', start)
        return (text[:start] + touch_command(marker) + text[end:]).encode()

    return rewrite(source, target, edit)


def with_pickled_example_inputs(source: Path, target: Path, marker: Path) -> Path:
    """Example inputs that fail torch's safe load, so torch retries with weights_only=False."""

    def edit(name: str, data: bytes) -> bytes:
        if name.endswith("data/sample_inputs/model.pt"):
            buffer = io.BytesIO()
            torch.save(((RunsCommand(marker),), {}), buffer)
            return buffer.getvalue()
        return data

    return rewrite(source, target, edit)


REFUSED_ARCHIVES = {
    "pickled-weight": with_pickled_weight,
    "guard": with_guard,
    "shape-expression": with_shape_expression,
}
CODE_RUNNING_ARCHIVES = REFUSED_ARCHIVES | {"example-inputs": with_pickled_example_inputs}


def classify(tmp_path: Path, model: Path, capsys) -> tuple[int, str]:
    clip = tmp_path / "clip.wav"
    import soundfile

    soundfile.write(clip, tone(0.5), 16000)
    code = main(
        ["classify", str(clip), "--model", str(model), "--labels", str(tmp_path / "labels.txt")]
    )
    return code, capsys.readouterr().err


def test_a_pt2_whose_weight_is_a_pickle_is_refused_and_runs_nothing(tmp_path, exported, capsys):
    marker = tmp_path / "ran"
    evil = with_pickled_weight(exported, tmp_path / "evil.pt2", marker)
    code, err = classify(tmp_path, evil, capsys)
    assert code == 2
    assert err.count("\n") == 1, err
    assert "evil.pt2" in err and "'linear.weight' is stored as a pickle" in err
    assert not marker.exists()


@pytest.mark.parametrize("craft", list(REFUSED_ARCHIVES.values()), ids=list(REFUSED_ARCHIVES))
def test_a_pt2_with_code_in_its_guards_or_shapes_is_refused(tmp_path, exported, craft, capsys):
    marker = tmp_path / "ran"
    evil = craft(exported, tmp_path / "evil.pt2", marker)
    code, err = classify(tmp_path, evil, capsys)
    assert not marker.exists()
    assert code == 2 and err.count("\n") == 1, err
    assert "refused, loading it could run code" in err


def test_pickled_example_inputs_are_never_read(tmp_path, exported, capsys):
    marker = tmp_path / "ran"
    evil = with_pickled_example_inputs(exported, tmp_path / "evil.pt2", marker)
    code, err = classify(tmp_path, evil, capsys)
    assert code == 0, err
    assert not marker.exists()


def test_the_crafted_archives_do_run_code_in_torch_export_load(tmp_path, exported):
    """The threat is real: torch's own loader runs each command (guards on the first call)."""
    for name, craft in CODE_RUNNING_ARCHIVES.items():
        marker = tmp_path / f"ran-{name}"
        evil = craft(exported, tmp_path / f"{name}.pt2", marker)
        try:
            torch.export.load(evil).module()(torch.zeros(2, 100), torch.tensor([100, 50]))
        except Exception:  # noqa: S110 (the broken archives may fail after the command ran)
            pass
        assert marker.exists(), name


def test_a_genuine_program_passes_the_checks_and_loads(tmp_path, exported):
    copy = rewrite(exported, tmp_path / "copy.pt2", lambda name, data: data)
    model = load_model(copy)
    assert model.labels == LABELS and model.takes_lengths


def test_a_custom_object_constant_is_refused(tmp_path, exported):
    custom = {"path_name": "custom_obj_0", "is_param": False, "use_pickle": False}

    def edit(name: str, data: bytes) -> bytes:
        change = lambda doc: doc["config"].update(obj=custom)  # noqa: E731
        return edit_json(name, data, "model_constants_config.json", change)

    with pytest.raises(ModelError, match="'obj' is a pickled custom object"):
        load_model(rewrite(exported, tmp_path / "evil.pt2", edit))


@pytest.mark.parametrize(
    "entry",
    ["data/aotinductor/model/model.so", "data/weights/model.pt", "models/other.json"],
    ids=["compiled-library", "legacy-pickled-weights", "second-program"],
)
def test_archive_entries_a_plain_program_lacks_are_refused(tmp_path, exported, entry):
    evil = rewrite(exported, tmp_path / "evil.pt2", lambda name, data: data)
    top = zipfile.ZipFile(evil).namelist()[0].split("/")[0]
    with zipfile.ZipFile(evil, "a") as archive:
        archive.writestr(f"{top}/{entry}", b"\x80\x02")
    with pytest.raises(ModelError, match=f"holds '{entry}'"):
        load_model(evil)


def test_a_parameter_name_that_is_not_plain_is_refused(tmp_path, exported):
    """Parameter names are pasted into generated Python as `getattr(self, "NAME")`."""
    name = 'w")or(1'

    def edit(entry: str, data: bytes) -> bytes:
        return data.replace(b'"linear.weight"', json.dumps(name).encode())

    with pytest.raises(ModelError, match="not a plain dotted name"):
        load_model(rewrite(exported, tmp_path / "evil.pt2", edit))


def test_a_torchscript_archive_with_a_pickled_command_runs_nothing(tmp_path, capsys):
    """TorchScript's unpickler resolves only TorchScript types: data.pkl and constants.pkl
    naming os.system fail to load (a regression guard for a future PyTorch)."""
    good = tmp_path / "good.pt"
    torch.jit.script(TwoInputs()).save(str(good))
    (tmp_path / "labels.txt").write_text("\n".join(LABELS))
    marker = tmp_path / "ran"
    for entry in ("data.pkl", "constants.pkl"):

        def edit(name: str, data: bytes, entry: str = entry) -> bytes:
            return pickle.dumps(RunsCommand(marker), protocol=2) if name.endswith(entry) else data

        evil = rewrite(good, tmp_path / f"evil-{entry}.pt", edit)
        code, err = classify(tmp_path, evil, capsys)
        assert code == 2 and err.count("\n") == 1, err
        assert "TorchScript" in err
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_a_checkpoint_holding_a_command_is_refused_without_torch_advice(tmp_path, legacy, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    payload = {"model": {"architecture": "x"}, "state_dict": RunsCommand(marker)}
    if legacy:
        evil.write_bytes(pickle.dumps(payload, protocol=2))  # torch's own unpickler reads 2
    else:
        torch.save(payload, evil)
    code, err = classify(tmp_path, evil, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "posix.system" in err and "refused" in err
    assert "weights_only" not in err
    assert not marker.exists()


def test_a_model_directory_with_pickled_weights_runs_nothing(tmp_path, random_model, capsys):
    from advstudio.core.models.store import save_model_dir

    directory = save_model_dir(tmp_path / "m", random_model, "average_pool_cnn", {})
    marker = tmp_path / "ran"
    torch.save({"x": RunsCommand(marker)}, directory / "weights.pt")
    code, err = classify(tmp_path, directory, capsys)
    assert code == 2 and err.count("\n") == 1 and "weights_only" not in err, err
    assert not marker.exists()


def wav_bytes() -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(1600, np.float32), 16000, format="WAV")
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.wav", wav_bytes, "x.wav: an audio file, not a model"),
        ("x.pt", wav_bytes, "x.pt: an audio file, not a model"),
        ("x.txt", lambda: b"a\nb\nc\n", "x.txt: a text file, not a model"),
        (
            "x.zip",
            zip_bytes,
            "x.zip: a zip archive that is neither a TorchScript file nor a torch.export program",
        ),
        ("x.pt2", zip_bytes, "x.pt2: a zip archive that is neither a TorchScript file nor"),
        ("x.pt", lambda: b"PK\x03\x04 truncated", "x.pt: a damaged zip archive"),
        ("x.bin", lambda: bytes(range(256)) * 4, "x.bin: not a model file"),
        ("x.pt", lambda: b"\x80\x02 truncated", "x.pt: not a loadable weights file"),
        ("x.pt", lambda: pickle.dumps({"a": 1}, protocol=5), "x.pt: not a loadable weights file"),
    ],
    ids=[
        *("wav", "wav-named-pt", "text", "zip", "zip-named-pt2", "bad-zip", "binary"),
        *("bad-pickle", "plain-pickle"),
    ],
)
def test_a_file_that_is_not_a_model_is_named_for_what_it_is(
    tmp_path, name, content, message, capsys
):
    path = tmp_path / name
    path.write_bytes(content())
    (tmp_path / "labels.txt").write_text("\n".join(LABELS))
    code, err = classify(tmp_path, path, capsys)
    assert code == 2
    assert err.count("\n") == 1, err
    assert message in err
    assert "weights_only" not in err


PYSIDE_PICKLING_SETTINGS = """
import os, sys
from PySide6.QtCore import QSettings
class RunsCommand:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
settings = QSettings(sys.argv[1], QSettings.Format.IniFormat)
for key in ("geometry", "state", "attack", "scale", "recent"):
    settings.setValue(key, RunsCommand())
settings.sync()
"""


def test_a_crafted_settings_file_runs_nothing_when_the_window_opens(
    qtbot, random_model, tmp_path, monkeypatch
):
    """PySide6 pickles a Python object put into QSettings and QSettings.value unpickles it; the
    window reads its settings from JSON instead, and ignores values of the wrong kind."""
    import subprocess
    import sys

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from advstudio.core.playback import NullOutput
    from advstudio.gui.main_window import MainWindow
    from advstudio.gui.settings import default_settings_path

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    marker = tmp_path / "ran"
    qsettings_file = QSettings("advstudio", "advstudio").fileName()  # where QSettings would read
    subprocess.run(
        [sys.executable, "-c", PYSIDE_PICKLING_SETTINGS, qsettings_file, str(marker)],
        check=True,
        timeout=60,
    )
    assert b"PySide::PyObjectWrapper" in Path(qsettings_file).read_bytes()
    json_file = default_settings_path()
    json_file.parent.mkdir(parents=True, exist_ok=True)
    json_file.write_text('{"geometry": {"base64": "!"}, "recent": 5, "attack": ["x"]}')
    window = MainWindow(random_model, output=NullOutput(), store_path=tmp_path / "r.sqlite")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.audio is not None, timeout=60_000)  # the first clip opened
    window.close()
    for worker in (window.worker, window.loader, window.clip.painter):
        worker.wait()
    assert not marker.exists()
    saved = json.loads(json_file.read_text())
    assert saved["attack"] == "cw" and saved["geometry"]["base64"]


def test_resuming_from_a_checkpoint_holding_a_command_runs_nothing(tmp_path, write_wav, capsys):
    """`train --resume` reads OUT/checkpoint.pt, which may come from someone else's run."""
    data = tmp_path / "set"
    for index in range(8):
        write_wav(f"set/{['Bass', 'Gong'][index % 2]}/{index}.wav", tone(0.3, 110 * (index + 1)))
    out = tmp_path / "model"
    out.mkdir()
    marker = tmp_path / "ran"
    torch.save({"state_dict": RunsCommand(marker), "epoch": 0}, out / "checkpoint.pt")
    args = ["train", str(data), "--out", str(out), "--resume", "--preset", "demo", "--epochs", "1"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("advstudio: error:") == 1, err
    assert "checkpoint.pt: holds a Python object (posix.system)" in err.splitlines()[-1]
    assert not marker.exists()
