"""Detectors of adversarial examples: the MMD test, the ROC figures against scikit-learn, the
binding to a model and sample rate, saving, separation of adversarial examples on the shipped
model, the adaptive attack, and the `detect` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import demo_clip, demo_folder, make_random_model, shortest_demo_clip
from scipy.signal import butter, lfilter
from sklearn.metrics import roc_auc_score

from advstudio.cli import main
from advstudio.core.attacks import make_attack
from advstudio.core.audio import load_audio
from advstudio.core.detectors import (
    DETECTORS,
    DetectorError,
    load_detector,
    make_detector,
    mmd_test,
)
from advstudio.core.detectors.evaluation import detection_figures, evaluate_detectors
from advstudio.core.models import load_model
from advstudio.core.resources import demo_clips

RATE = 16000
CLIP_SAMPLES = 8000  # half a second of each demo clip keeps every test in seconds


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def clips():
    return [load_audio(p, RATE).samples[:CLIP_SAMPLES] for p in demo_clips()]


@pytest.fixture(scope="module")
def fgsm_split(model, clips):
    """Clean and strong-FGSM clips, fit half and held-out half (only successful examples)."""
    attack = make_attack("fgsm", eps=0.05)
    adversarial = [r.adversarial if r.success else None for r in attack.run(model, clips)]
    fit = [c for c in clips[0::2]], [a for a in adversarial[0::2] if a is not None]
    held = [c for c in clips[1::2]], [a for a in adversarial[1::2] if a is not None]
    assert len(fit[1]) >= 3 and len(held[1]) >= 3
    return fit, held


def narrowband_plant(clip: np.ndarray) -> np.ndarray:
    """A 7 kHz tone at -40 dBFS: a perturbation in a direction the demo clips leave alone."""
    t = np.arange(len(clip)) / RATE
    return (clip + 0.01 * np.sin(2 * np.pi * 7000 * t)).astype(np.float32)


# -- the MMD test --------------------------------------------------------------------------


def test_mmd_p_value_is_small_for_different_distributions_and_large_for_the_same():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5))
    same = rng.standard_normal((40, 5))
    shifted = rng.standard_normal((40, 5)) + 1.0
    _, p_same = mmd_test(x, same, permutations=500)
    statistic, p_shifted = mmd_test(x, shifted, permutations=500)
    assert p_same > 0.1
    assert p_shifted < 0.01
    assert statistic > mmd_test(x, same, permutations=10)[0]


# -- the figures -----------------------------------------------------------------------------


def test_roc_auc_and_tpr_at_5pct_fpr_agree_with_scikit_learn_and_a_threshold_scan():
    rng = np.random.default_rng(3)
    clean = rng.normal(0.0, 1.0, 200)
    adversarial = rng.normal(1.5, 1.0, 120)
    figures = detection_figures(clean, adversarial)
    truth = np.r_[np.zeros(200), np.ones(120)]
    assert figures.auc == pytest.approx(roc_auc_score(truth, np.r_[clean, adversarial]))
    # The true positive rate of the best threshold that flags at most 5 % of clean clips.
    best = max(
        (adversarial >= t).mean()
        for t in np.r_[clean, adversarial, np.inf]
        if (clean >= t).mean() <= 0.05
    )
    assert figures.tpr_at_fpr == pytest.approx(best)
    assert 0.2 < figures.tpr_at_fpr < 0.9
    assert detection_figures(clean, []) is None


# -- binding and saving ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(model, fgsm_split):
    (clean, adversarial), _ = fgsm_split
    return {name: make_detector(name).fit(model, clean, adversarial, RATE) for name in DETECTORS}


@pytest.mark.parametrize("name", list(DETECTORS))
def test_a_detector_refuses_another_rate_and_another_model(fitted, model, clips, name):
    detector = fitted[name]
    with pytest.raises(DetectorError, match=r"fitted on 16000 Hz clips; these are 22050 Hz"):
        detector.score(model, clips[:2], 22050)
    with pytest.raises(DetectorError, match="fitted with model .*not with this one"):
        detector.score(make_random_model(model.labels), clips[:2], RATE)


@pytest.mark.parametrize("name", list(DETECTORS))
def test_save_and_load_give_the_same_scores(fitted, model, fgsm_split, tmp_path, name):
    _, (clean, adversarial) = fgsm_split
    both = clean[:3] + adversarial[:3]
    detector = fitted[name]
    loaded = load_detector(detector.save(tmp_path / name))
    assert type(loaded) is type(detector)
    scores = loaded.score(model, both, RATE)
    np.testing.assert_allclose(scores, detector.score(model, both, RATE), rtol=1e-6)
    assert np.ptp(scores) > 0


def test_a_saved_detector_is_json_and_plain_arrays(fitted, tmp_path):
    folder = fitted["subnetwork"].save(tmp_path / "d")
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "detector.json"]
    config = json.loads((folder / "detector.json").read_text())
    assert config["detector"] == "subnetwork" and config["sample_rate"] == RATE
    with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:
        assert all(arrays[k].dtype != object for k in arrays.files)


# -- separation ------------------------------------------------------------------------------


# The PCA detectors do not separate these examples on the shipped model (AUC 0.23 and 0.55
# measured for pca-input and pca-hidden; the others 0.85 to 0.94): a finding, not a test.
SEPARATING = [n for n in DETECTORS if n not in ("pca-input", "pca-hidden")]


@pytest.mark.parametrize("name", SEPARATING)
def test_each_detector_separates_fgsm_examples_from_clean_held_out_clips(
    fitted, model, fgsm_split, name
):
    _, (clean, adversarial) = fgsm_split
    detector = fitted[name]
    figures = detection_figures(
        detector.score(model, clean, RATE), detector.score(model, adversarial, RATE)
    )
    assert figures.auc > 0.6


def test_hidden_pca_on_fewer_clips_than_dimensions_scores_whatever_basis_the_svd_chose(
    fitted, model, fgsm_split
):
    """One hidden vector per clip leaves most directions unused by the clean clips; the SVD
    returns an arbitrary basis of them (another order of the same clips, or another processor,
    gives another), so the score reads them as one subspace and must not move."""
    (clean, adversarial), (held_clean, held_adversarial) = fgsm_split
    reordered = make_detector("pca-hidden").fit(model, clean[::-1], adversarial[::-1], RATE)
    held = held_clean + held_adversarial
    assert fitted["pca-hidden"].used.shape[0] < fitted["pca-hidden"].used.shape[1]
    np.testing.assert_allclose(
        reordered.score(model, held, RATE), fitted["pca-hidden"].score(model, held, RATE), rtol=1e-3
    )


def test_only_a_pca_fitted_on_fewer_vectors_than_dimensions_has_a_caveat(fitted, tmp_path):
    """12 clean clips give 12 hidden vectors for 512 dimensions (a caveat that names it);
    their log-mel frames (hundreds) span all 64 input dimensions; the others have none."""
    hidden = fitted["pca-hidden"]
    spanned = hidden.used.shape[0]
    assert hidden.fitted_vectors == 12 and spanned < 12
    assert hidden.caveat().startswith(
        f"pca-hidden: fitted on 12 clean clips for 512 dimensions, so clean data spans only "
        f"{spanned} of its directions"
    )
    assert [n for n in DETECTORS if fitted[n].caveat()] == ["pca-hidden"]
    # kept when saved; a detector saved before the count was kept loads, with no caveat
    folder = hidden.save(tmp_path / "h")
    assert load_detector(folder).caveat() == hidden.caveat()
    config = json.loads((folder / "detector.json").read_text())
    del config["settings"]["fitted_vectors"]
    (folder / "detector.json").write_text(json.dumps(config))
    assert load_detector(folder).caveat() is None


def test_a_band_limited_input_pca_on_many_frames_has_no_caveat(model, clips):
    """Hundreds of frames of telephone-band clips leave the top bands unused: no caveat (a
    perturbation there is what the input PCA is for), though it spans fewer than 64."""
    b, a = butter(8, 3400, fs=RATE)
    narrow = [lfilter(b, a, c).astype(np.float32) for c in clips[0::2]]
    detector = make_detector("pca-input").fit(
        model, narrow, [narrowband_plant(c) for c in narrow], RATE
    )
    assert detector.fitted_vectors > 64 and detector.used.shape[0] < 64
    assert detector.caveat() is None


def test_input_pca_separates_a_narrowband_perturbation(model, clips):
    """PCA on log-mel frames flags energy in directions clean clips leave alone; broadband
    noise (FGSM, PGD) fills the quiet bands and reads as *more* typical to it (AUC under 0.5:
    a finding the detector table reports), so it is shown here on a planted tone."""
    fit, held = clips[0::2], clips[1::2]
    detector = make_detector("pca-input").fit(model, fit, [narrowband_plant(c) for c in fit], RATE)
    figures = detection_figures(
        detector.score(model, held, RATE),
        detector.score(model, [narrowband_plant(c) for c in held], RATE),
    )
    assert figures.auc > 0.6


# -- the adaptive attack ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_adaptive_attack_lowers_the_detectors_auc(model, clips):
    torch.manual_seed(0)
    attack = make_attack("pgdn", eps=0.005, eta=5e-4, max_iter=30, update="sign")
    fit, held = clips[0::2], clips[1::2]
    adversarial = [r.adversarial for r in attack.run(model, fit) if r.success]
    detector = make_detector("subnetwork").fit(model, fit, adversarial, RATE)
    evaluation = evaluate_detectors(model, [detector], attack, held, adaptive=True, weight=3.0)
    row = evaluation.rows[0]
    assert row.adaptive_attack.adversarial, "the adaptive attack fooled no clip"
    assert row.adaptive.auc < row.plain.auc - 0.1


# -- the commands ----------------------------------------------------------------------------


@pytest.fixture
def demo_csv(tmp_path):
    from advstudio.core.data.datasets import open_dataset
    from advstudio.core.resources import demo_clips_dir

    demo = open_dataset(demo_clips_dir())
    rows = ["path,label,split"] + [
        f"{e.path},{e.label},{'train' if i % 2 == 0 else 'validation'}"
        for i, e in enumerate(demo.examples)
    ]
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "metadata.csv"


def test_detect_fit_then_evaluate_writes_figures_and_a_report(demo_csv, tmp_path, capsys):
    fast = ["--attack", "fgsm", "--param", "eps=0.05", "--limit", "8", "--threads", "1"]
    out = tmp_path / "detectors"
    chosen = ["--detectors", "pca-hidden,mmd"]
    assert main(["detect", "fit", str(demo_csv), *fast, *chosen, "--out", str(out)]) == 0
    assert (out / "mmd" / "detector.json").is_file()
    fit = json.loads((out / "fit.json").read_text())
    assert fit["detectors"] == ["pca-hidden", "mmd"]
    # 8 clean clips for 512 hidden dimensions: said on stderr and kept with the fit
    assert [c.split(":")[0] for c in fit["caveats"]] == ["pca-hidden"]
    assert f"advstudio: note: {fit['caveats'][0]}" in capsys.readouterr().err
    result = tmp_path / "r.json"
    report = tmp_path / "report"
    argv = ["detect", "evaluate", str(demo_csv), *fast, "--detector", str(out)]
    assert main([*argv, "--json", str(result), "--report", str(report)]) == 0
    table = capsys.readouterr().out
    assert "pca-hidden" in table and "TPR@5%FPR" in table
    written = json.loads(result.read_text())
    assert written["caveats"] == fit["caveats"]
    evaluation = written["evaluations"][0]
    assert [d["detector"] for d in evaluation["detectors"]] == ["mmd", "pca-hidden"]
    assert 0.0 <= evaluation["detectors"][0]["plain"]["auc"] <= 1.0
    html = (report / "report.html").read_text()
    assert "data:image/png;base64" in html and "Detectors" in html


def test_detect_evaluate_refuses_a_detector_of_another_model_in_one_line(
    fitted, demo_csv, tmp_path, capsys
):
    folder = fitted["mmd"].save(tmp_path / "mmd")
    other = tmp_path / "other"
    from advstudio.core.models.store import save_model_dir

    save_model_dir(other, make_random_model(), "average_pool_cnn", {})
    argv = ["detect", "evaluate", str(demo_csv), "--attack", "fgsm", "--detector", str(folder)]
    assert main([*argv, "--model", str(other)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("advstudio: error: the mmd detector was fitted with model")
    assert "\n" not in err


@pytest.mark.parametrize("option", ["--batch-size", "--limit"])
@pytest.mark.parametrize("command", ["fit", "evaluate"])
def test_detect_refuses_a_batch_size_or_limit_of_zero_in_one_line(
    fitted, demo_csv, tmp_path, capsys, command, option
):
    where = ["--out", str(tmp_path / "out")]
    if command == "evaluate":
        where = ["--detector", str(fitted["mmd"].save(tmp_path / "mmd"))]
    argv = ["detect", command, str(demo_csv), "--attack", "fgsm", option, "0", *where]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err == f"advstudio: error: {option} must be at least 1, got 0"


@pytest.mark.parametrize("weight", ["0", "-1", "nan", "inf"])
def test_detect_evaluate_refuses_a_weight_that_is_not_a_positive_number(
    fitted, demo_csv, tmp_path, capsys, weight
):
    folder = fitted["mmd"].save(tmp_path / "mmd")
    argv = ["detect", "evaluate", str(demo_csv), "--attack", "fgsm", "--detector", str(folder)]
    assert main([*argv, "--adaptive", "--weight", weight]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("advstudio: error: --weight must be above 0 and finite, got")


def test_detect_evaluate_reads_only_the_detectors_the_last_fit_wrote(
    fitted, demo_csv, tmp_path, capsys
):
    """A refit with --overwrite and fewer --detectors leaves the older detectors' folders in
    --out; evaluating the folder must not report them as part of this fit."""
    out = tmp_path / "detectors"
    fitted["mmd"].save(out / "mmd")
    fitted["pca-hidden"].save(out / "pca-hidden")  # left over from an earlier fit
    (out / "fit.json").write_text(json.dumps({"detectors": ["mmd"]}))
    result = tmp_path / "r.json"
    argv = ["detect", "evaluate", str(demo_csv), "--attack", "fgsm", "--param", "eps=0.05"]
    assert main([*argv, "--limit", "4", "--detector", str(out), "--json", str(result)]) == 0
    evaluation = json.loads(result.read_text())["evaluations"][0]
    assert [d["detector"] for d in evaluation["detectors"]] == ["mmd"]


def test_detect_evaluate_leaves_out_the_clips_the_detectors_were_fitted_on(tmp_path, capsys):
    """Class folders: fit takes the folder's training rule, evaluate every file by default, so
    without the fit's file list the 'held-out' figures included the fitting clips."""
    short = shortest_demo_clip(besides=("Gong", "Harmonica"))
    data = demo_folder(tmp_path / "clips", (demo_clip("Gong"), short, demo_clip("Harmonica")))
    out = tmp_path / "detectors"
    fast = ["--attack", "fgsm", "--threads", "1"]
    fit = ["detect", "fit", str(data), *fast, "--detectors", "pca-input", "--out", str(out)]
    assert main(fit) == 0
    fitted = json.loads((out / "fit.json").read_text())["files"]
    capsys.readouterr()
    result = tmp_path / "r.json"
    evaluate = ["detect", "evaluate", str(data), *fast, "--detector", str(out)]
    assert main([*evaluate, "--json", str(result)]) == 0
    assert f"{len(fitted)} clips the detectors were fitted on left out" in capsys.readouterr().err
    assert json.loads(result.read_text())["held-out clips"] == 3 - len(fitted)
    assert main([*evaluate, "--split", "train"]) != 0  # nothing but fitting clips
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "advstudio: error: every clip was one the detectors were fitted on; give held-out "
        "clips (--split)"
    )


def test_detect_fit_refuses_a_bad_transform_before_fitting_anything(demo_csv, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["detect", "fit", str(demo_csv), "--attack", "fgsm", "--out", str(out)]
    assert main([*argv, "--transform", "gsm@13k", "--limit", "2"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("advstudio: error: unknown transform 'gsm@13k'") and "\n" not in err
    assert not list(out.glob("*/detector.json"))  # no detector fitted and left behind


def test_a_folder_that_is_no_detector_is_refused_in_one_line(fitted, tmp_path):
    from advstudio.core.errors import ResultsFileError

    with pytest.raises(ResultsFileError, match="not a saved detector"):
        load_detector(tmp_path)
    folder = fitted["mmd"].save(tmp_path / "mmd")
    config = json.loads((folder / "detector.json").read_text())
    del config["settings"]["bandwidth"]
    (folder / "detector.json").write_text(json.dumps(config))
    with pytest.raises(ResultsFileError, match="saved mmd detector: missing or bad field"):
        load_detector(folder)
    (folder / "arrays.npz").write_bytes(b"not numpy")
    with pytest.raises(ResultsFileError, match="cannot read the arrays"):
        load_detector(folder)


@pytest.mark.parametrize("clean", [8, 40])
def test_the_table_says_when_too_few_clean_clips_measure_tpr_at_5pct_fpr(clean):
    from advstudio.core.detectors.evaluation import (
        AttackOutcome,
        DetectionEvaluation,
        DetectorRow,
    )
    from advstudio.core.reports.detectors import format_detector_table

    clean_scores = np.linspace(0.0, 1.0, clean)
    adversarial_scores = np.linspace(0.5, 1.5, 6)
    figures = detection_figures(clean_scores, adversarial_scores)
    outcome = AttackOutcome([np.zeros(4)] * 6, clean, 20.0)
    evaluation = DetectionEvaluation(
        "fgsm", outcome, [DetectorRow("pca-input", "PCA", figures)], clean, None
    )
    table = format_detector_table([evaluation])
    if clean < 20:  # one false positive is over 5 %: the figure is the TPR at none
        assert figures.tpr_at_fpr == figures.tpr[figures.fpr == 0].max()
        assert "with 8 clean clips one false positive is 12%" in table
        assert "TPR with no false positive" in table
    else:
        assert "no false positive" not in table
