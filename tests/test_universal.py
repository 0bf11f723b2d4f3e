"""The universal perturbation: one waveform fitted over many clips (core), written and applied
by `advstudio universal` and `advstudio apply-universal`, and shown in the Clip tab through
Attack > Apply universal perturbation."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from conftest import THREE_DEMO_CLIPS, demo_listing  # noqa: E402

from advstudio.cli import main  # noqa: E402
from advstudio.core.attacks.universal import (  # noqa: E402
    UniversalSpec,
    apply_universal,
    reference_rms,
    rms,
    tile_indices,
    universal_perturbation,
)
from advstudio.core.audio import load_audio  # noqa: E402
from advstudio.core.data.datasets import open_dataset  # noqa: E402
from advstudio.core.metrics import snr_db  # noqa: E402
from advstudio.core.models import load_model  # noqa: E402
from advstudio.core.resources import demo_clips_dir  # noqa: E402

LSB = 1 / 32768  # one 16-bit step


@pytest.fixture(scope="module")
def shipped():
    return load_model()


def demo_pairs(model, every: int, seconds: float = 1.0) -> list[tuple[str, np.ndarray]]:
    """Every `every`-th demo clip at the model's rate, its first `seconds` (quick to fit)."""
    demo = open_dataset(demo_clips_dir())
    keep = round(seconds * model.sample_rate)
    return [
        (str(e.path), load_audio(e.path, model.sample_rate).samples[:keep])
        for e in demo.examples[::every]
    ]


def test_snr_budget_holds_against_the_reference_and_each_clip_snr_is_measured(shipped):
    pairs = demo_pairs(shipped, 4)
    spec = UniversalSpec(snr_db=25.0, seconds=0.25, epochs=2, batch_size=3, seed=3)
    result = universal_perturbation(shipped, pairs[:3], pairs[3:], spec)
    reference = reference_rms([c for _, c in pairs[:3]])
    assert result.reference_rms == pytest.approx(reference)
    # the budget: the perturbation's RMS is 25 dB under the reference level (projected)
    assert 20 * np.log10(reference / rms(result.perturbation)) >= 25.0 - 1e-3
    # every clip's SNR is measured on what it got: recomputed here from the offset reported
    for split, outcomes in result.outcomes.items():
        clips = dict(pairs)
        for o in outcomes:
            adversarial = apply_universal(clips[o.path], result.perturbation, o.offset)
            quantised = np.round(adversarial * 32768) / 32768
            assert o.snr_db == pytest.approx(snr_db(clips[o.path], quantised), abs=0.05), split
    assert {s.name for s in map(result.summary, result.outcomes)} == {"fit", "held-out"}


def test_a_generous_perturbation_fools_more_fitting_clips_than_noise_of_its_level(shipped):
    pairs = demo_pairs(shipped, 3)  # 8 clips, one second each
    spec = UniversalSpec(snr_db=5.0, seconds=0.5, epochs=6, batch_size=4, seed=1)
    result = universal_perturbation(shipped, pairs, [], spec)
    fit = result.summary("fit")
    assert fit.fooling_rate >= 0.5
    assert fit.fooling_rate > fit.noise_fooling_rate


def test_targeted_fit_pulls_clips_towards_the_target(shipped):
    pairs = demo_pairs(shipped, 3)
    accordion = shipped.labels.index("Accordion")
    spec = UniversalSpec(snr_db=0.0, seconds=0.5, epochs=6, batch_size=4, seed=1, target=accordion)
    result = universal_perturbation(shipped, pairs, [], spec)
    fit = result.summary("fit")
    assert fit.n == sum(o.clean != accordion for o in result.outcomes["fit"])
    assert fit.fooling_rate > fit.noise_fooling_rate
    assert all(o.adversarial == accordion for o in result.outcomes["fit"] if o.fooled)


def test_tiling_covers_longer_clips_and_crops_shorter_ones():
    assert tile_indices(5, 3, 2).tolist() == [2, 0, 1, 2, 0]
    assert tile_indices(2, 4, 1).tolist() == [1, 2]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_fits_writes_and_applies_one_tensor_to_every_file(tmp_path, capsys, shipped):
    (tmp_path / "data").mkdir()
    data = demo_listing(tmp_path / "data", every=4)
    pert = tmp_path / "pert.wav"
    code, out, err = run(
        ["universal", str(data), "--linf", "0.004", "--seconds", "0.5", "--epochs", "1",
         "--batch-size", "6", "--seed", "5", "-o", str(pert), "--json", str(tmp_path / "r.json"),
         "--report", str(tmp_path / "report")],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "fooling rate" in out and "held-out" in out and "noise control" in out
    info = sf.info(pert)
    assert info.subtype == "FLOAT" and info.samplerate == shipped.sample_rate
    assert info.frames == shipped.sample_rate // 2
    perturbation = sf.read(pert, dtype="float32")[0]
    assert np.abs(perturbation).max() <= 0.004 + 1e-7
    sidecar = json.loads(pert.with_suffix(".json").read_text())
    assert sidecar["linf"] == 0.004 and sidecar["seed"] == 5 and sidecar["target"] is None
    assert sidecar["model_fingerprint"] and sidecar["reference"].startswith("median RMS")
    results = json.loads((tmp_path / "r.json").read_text())
    assert {row["name"] for row in results["summary"]} == {"fit", "held-out"}
    html = (tmp_path / "report" / "report.html").read_text()
    assert "<audio" in html and "universal perturbation" in html and "held-out" in html

    # apply: each output is its file plus the same perturbation, tiled, in 16 bits
    files = [demo_clips_dir() / name for name in THREE_DEMO_CLIPS[:2]]
    outdir = tmp_path / "applied"
    code, out, err = run(
        ["apply-universal", str(pert), *map(str, files), "-o", str(outdir)], capsys
    )
    assert code == 0, err
    deltas = []
    for file in files:
        written = outdir / (file.stem + ".wav")
        assert sf.info(written).subtype == "PCM_16"
        clean, rate = sf.read(file, dtype="float32")
        assert rate == shipped.sample_rate
        delta = sf.read(written, dtype="float32")[0] - clean
        assert np.abs(delta).max() <= 0.004 + LSB  # the budget, on the file as written
        expected = perturbation[tile_indices(len(clean), len(perturbation), 0)]
        np.testing.assert_allclose(delta, expected, atol=LSB)
        deltas.append(delta)
    common = min(map(len, deltas))  # the same tensor under both files
    np.testing.assert_allclose(deltas[0][:common], deltas[1][:common], atol=2 * LSB)
    period = len(perturbation)
    np.testing.assert_allclose(deltas[0][period : 2 * period], deltas[0][:period], atol=2 * LSB)

    code, _, err = run(["apply-universal", str(pert), str(files[0]), "-o", str(outdir)], capsys)
    assert code == 2 and "already exists" in err and err.count("\n") == 1


def test_apply_resamples_a_perturbation_to_the_file_rate(tmp_path, capsys, write_wav):
    pert = write_wav("pert.wav", np.full(800, 0.01, np.float32), rate=8000, subtype="FLOAT")
    clip = write_wav("clip.wav", np.zeros(3000, np.float32), rate=16000)
    code, _, err = run(["apply-universal", str(pert), str(clip), "-o", str(tmp_path / "o")], capsys)
    assert code == 0, err
    written, rate = sf.read(tmp_path / "o" / "clip.wav", dtype="float32")
    assert rate == 16000 and len(written) == 3000
    assert np.median(written) == pytest.approx(0.01, abs=2 * LSB)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seconds", "1"], "give one budget"),
        (["--linf", "0.01", "--snr-db", "20"], "give one budget"),
        (["--linf", "0.01", "--target", "Banjo"], "unknown target class 'Banjo'"),
        (["--linf", "2"], "--linf must be in (0, 1]"),
    ],
)
def test_universal_bad_input_is_one_line(tmp_path, capsys, argv, message):
    data = demo_listing(tmp_path, every=12)
    code, _, err = run(["universal", str(data), "-o", str(tmp_path / "p.wav"), *argv], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "p.wav").exists()


def test_apply_universal_refuses_a_perturbation_that_is_not_audio(tmp_path, capsys):
    bogus = tmp_path / "pert.wav"
    bogus.write_text("not audio")
    clip = demo_clips_dir() / THREE_DEMO_CLIPS[0]
    code, _, err = run(
        ["apply-universal", str(bogus), str(clip), "-o", str(tmp_path / "o")], capsys
    )
    assert code == 2 and "pert.wav" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
