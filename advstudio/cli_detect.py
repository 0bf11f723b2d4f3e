"""`advstudio detect fit` (fit detectors of adversarial examples on clean clips and the
examples of chosen attacks) and `advstudio detect evaluate` (their ROC, AUC and TPR at 5 % FPR
on held-out clips, before and after an attack that knows them)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from advstudio.cli_defend import spread
from advstudio.core.errors import ParameterError

if TYPE_CHECKING:
    from advstudio.core.detectors import Detector

FIT_FILE = "fit.json"


def _clips(examples: list, model) -> tuple[list, list[int | None]]:
    from advstudio.core.inference import load_for_model

    clips = [load_for_model(e.path, model).samples for e in examples]
    labels = [None if e.label is None else model.labels.index(e.label) for e in examples]
    return clips, labels


def _attacks(args: argparse.Namespace) -> list:
    """The chosen attacks (their names, parameters, --batch-size and --limit checked before any
    work)."""
    from advstudio.cli import check_counts
    from advstudio.core.attacks import make_attack
    from advstudio.core.attacks.params import parse_assignments

    check_counts(args)
    params = parse_assignments(args.param)
    return [make_attack(name, args.preset, **params) for name in args.attack]


def fitted_detectors(folder: str) -> list[Detector]:
    """The detectors in a saved detector's folder or a `detect fit --out` folder: those its
    fit.json names (a refit with --overwrite leaves the folders of other detectors behind,
    fitted on other examples), else every one saved in it."""
    from advstudio.core.detectors import load_detector, load_detectors
    from advstudio.core.errors import ResultsFileError

    summary = fit_summary(folder)
    if summary is None:
        return load_detectors(folder)
    try:
        names = sorted(map(str, summary["detectors"]))
    except (KeyError, TypeError) as exc:
        raise ResultsFileError(f"{Path(folder) / FIT_FILE}: no list of detectors ({exc})") from None
    return [load_detector(Path(folder) / name) for name in names]


def fit_summary(folder: str) -> dict | None:
    """The fit.json a `detect fit --out` folder holds (None for a folder without one)."""
    from advstudio.core.errors import ResultsFileError

    path = Path(folder) / FIT_FILE
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFileError(f"{path}: not a readable fit summary ({exc})") from None
    if not isinstance(summary, dict):
        raise ResultsFileError(f"{path}: not a fit summary")
    return summary


def held_out(examples: list, folder: str) -> tuple[list, int]:
    """The examples the detectors in `folder` were not fitted on (by fit.json's files), and
    how many were left out: figures on fitting clips would not be held-out figures."""
    summary = fit_summary(folder) or {}
    fitted = {str(f) for f in summary.get("files", [])}
    kept = [e for e in examples if str(Path(e.path).resolve()) not in fitted]
    return kept, len(examples) - len(kept)


def _say_caveats(detectors: Sequence[Detector]) -> list[str]:
    """Print each detector's caveat about its fit (stderr) and return them."""
    caveats = [c for c in (d.caveat() for d in detectors) if c]
    for caveat in caveats:
        print(f"advstudio: note: {caveat}", file=sys.stderr)
    return caveats


def _cmd_detect_fit(args: argparse.Namespace) -> int:
    from advstudio.cli import open_data, select_examples
    from advstudio.cli_output import ProgressBarReporter
    from advstudio.core.detectors import DETECTORS, make_detector
    from advstudio.core.models import load_model
    from advstudio.core.models.base import fingerprint
    from advstudio.core.output_paths import check_output_folder
    from advstudio.core.reports.provenance import model_name

    out = check_output_folder(args.out, args.overwrite)
    names = [n.strip() for n in args.detectors.split(",")] if args.detectors else list(DETECTORS)
    detectors = [make_detector(name, args.transform) for name in names]  # names checked first
    attacks = _attacks(args)
    model = load_model(args.model, labels=args.labels, device=args.device)
    dataset = open_data(args.data, args)
    split = args.split or (
        "train" if "train" in dataset.with_classes(model.labels).splits else "all"
    )
    selection = select_examples(dataset, split, model.labels)
    examples = spread(selection.examples, args.limit)
    print(f"advstudio: fitting on {len(examples)} clips ({split} split)", file=sys.stderr)
    clips, labels = _clips(examples, model)
    reporter = ProgressBarReporter({a.name: a.max_iter for a in attacks})
    adversarial, found = [], {}
    for attack in attacks:
        results = attack.run(model, clips, None, labels, args.seed, None, args.batch_size, reporter)
        successful = [r.adversarial for r in results if r.success]
        found[attack.name] = len(successful)
        adversarial += successful
    if not adversarial:
        raise ParameterError(
            "no attack fooled the model on any fitting clip; a detector needs adversarial "
            "examples (try a stronger preset or --param)"
        )
    for detector in detectors:
        detector.fit(model, clips, adversarial, model.sample_rate)
        detector.save(out / detector.name)
        print(f"{detector.name}: fitted, saved in {out / detector.name}")
    caveats = _say_caveats(detectors)
    summary = {
        "model": model_name(args.model),
        "model_fingerprint": fingerprint(model),
        "data": str(args.data),
        "split": split,
        "clean_clips": len(clips),
        "files": [str(Path(e.path).resolve()) for e in examples],
        "adversarial_examples": found,
        "attack_parameters": {a.name: a.params for a in attacks},
        "detectors": names,
        "caveats": caveats,
    }
    (out / FIT_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def _cmd_detect_evaluate(args: argparse.Namespace) -> int:
    from advstudio.cli import check_outputs_free, open_data, select_examples
    from advstudio.cli_output import ProgressBarReporter
    from advstudio.core.detectors.evaluation import evaluate_detectors
    from advstudio.core.models import load_model
    from advstudio.core.reports.detectors import (
        detector_json,
        format_detector_table,
        write_detector_report,
    )
    from advstudio.core.reports.provenance import model_name

    outputs = check_outputs_free(args)
    if not 0 < args.weight < math.inf:  # nan or inf would make the adaptive loss nan
        raise ParameterError(f"--weight must be above 0 and finite, got {args.weight}")
    detectors = fitted_detectors(args.detector)
    attacks = _attacks(args)
    model = load_model(args.model, labels=args.labels, device=args.device)
    for detector in detectors:
        detector.check(model, model.sample_rate)
    caveats = _say_caveats(detectors)
    selection = select_examples(open_data(args.data, args), args.split, model.labels)
    if selection.note:
        print(f"advstudio: {selection.note}", file=sys.stderr)
    examples, fitted = held_out(selection.examples, args.detector)
    if fitted:
        print(f"advstudio: {fitted} clips the detectors were fitted on left out", file=sys.stderr)
    if not examples:
        raise ParameterError(
            "every clip was one the detectors were fitted on; give held-out clips (--split)"
        )
    examples = spread(examples, args.limit)
    clips, labels = _clips(examples, model)
    steps = {}
    for a in attacks:
        steps[a.name] = a.max_iter
        steps.update({f"{a.name}+{d.name}": a.max_iter for d in detectors})
    reporter = ProgressBarReporter(steps)
    evaluations = [
        evaluate_detectors(
            model,
            detectors,
            attack,
            clips,
            labels,
            adaptive=args.adaptive,
            weight=args.weight,
            seed=args.seed,
            batch_size=args.batch_size,
            reporter=reporter,
        )
        for attack in attacks
    ]
    print(format_detector_table(evaluations))
    config = {
        "model": model_name(args.model),
        "data": str(args.data),
        "held-out clips": len(clips),
        "detectors": str(args.detector),
        "adaptive": "yes" if args.adaptive else "no",
    }
    if caveats:
        config["caveats"] = caveats
    if outputs["json_path"] is not None:
        outputs["json_path"].write_text(detector_json(evaluations, config) + "\n")
    if outputs["report_dir"] is not None:
        written = write_detector_report(outputs["report_dir"], evaluations, config, args.overwrite)
        print(f"report written: {written['report.html']}")
    return 0


def add_detect_commands(
    sub: argparse._SubParsersAction,
    dataset_options: Callable[[argparse.ArgumentParser], None],
    model_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    from advstudio.core.detector_defaults import (
        DEFAULT_TRANSFORM,
        DEFAULT_WEIGHT,
        DETECTOR_NAMES,
    )

    detect = sub.add_parser("detect", help="detectors of adversarial examples: fit, evaluate")
    detect_sub = detect.add_subparsers(title="detect commands", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser, split_help: str) -> None:
        p.add_argument("data", help="dataset folder, CSV or GTZAN root")
        p.add_argument(
            "--attack",
            action="append",
            required=True,
            metavar="NAME",
            help="attack whose examples are used (repeatable): fgsm, pgdn, cw, mscw, ...",
        )
        p.add_argument("--preset", help="named parameter set of the attacks, e.g. paper")
        p.add_argument("--param", action="append", default=[], metavar="K=V")
        p.add_argument("--split", help=split_help)
        p.add_argument("--limit", type=int, metavar="N", help="use at most N clips")
        p.add_argument("--seed", type=int, default=21)
        p.add_argument("--batch-size", type=int, default=16)
        p.add_argument("--overwrite", action="store_true")
        dataset_options(p)
        model_options(p)

    p = detect_sub.add_parser(
        "fit",
        help="fit detectors on clean clips and the adversarial examples of chosen attacks",
    )
    common(p, "split to fit on (default: train where the data has one, else all)")
    p.add_argument(
        "--detectors",
        metavar="A,B",
        help=f"which detectors (default all: {', '.join(DETECTOR_NAMES)})",
    )
    p.add_argument(
        "--transform",
        metavar="SPEC",
        help=f"the transform detector's transform (default {DEFAULT_TRANSFORM}; e.g. lowpass@4k)",
    )
    p.add_argument("--out", required=True, help="folder for the fitted detectors")
    p.set_defaults(func=_cmd_detect_fit)

    p = detect_sub.add_parser(
        "evaluate",
        help="ROC, AUC and TPR at 5%% FPR of fitted detectors on held-out clips, with "
        "--adaptive also after an attack that minimises each detector's score",
    )
    common(p, "split to evaluate on (default: validation where defined, else all)")
    p.add_argument(
        "--detector", required=True, metavar="DIR", help="a fitted detector, or a fit --out folder"
    )
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="also run, per detector, the attack with the detector's score added to its loss",
    )
    p.add_argument(
        "--weight",
        type=float,
        default=DEFAULT_WEIGHT,
        help=f"the adaptive attack's weight of the detector's score, in units of its clean "
        f"scores' spread (default {DEFAULT_WEIGHT})",
    )
    p.add_argument("--json", help="write every figure as JSON")
    p.add_argument("--report", help="folder for report.html and results.json")
    p.set_defaults(func=_cmd_detect_evaluate)
