"""`advstudio universal` (fit one perturbation over a dataset) and `advstudio apply-universal`
(add a saved one to any files)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from advstudio.cli_tasks import add_task_store_option, task_model_device, task_store
from advstudio.core.errors import ExportExistsError, ParameterError

# Float: a perturbation 30 dB under a quiet reference spans a few 16-bit steps; the file
# keeps it as fitted, and quantisation to 16 bits happens once, where it is applied.
PERTURBATION_SUBTYPE = "FLOAT"

if TYPE_CHECKING:
    from advstudio.core.attacks.universal import UniversalResult
    from advstudio.core.evaluation.universal_study import UniversalStudy
    from advstudio.core.models.base import AudioClassifier


class _MessagesOnly:
    """Study messages (resuming) as `advstudio:` lines; no bar, so that a fit in this process
    prints just its epochs, as it always has."""

    def report(self, event: object) -> None:
        from advstudio.core.progress import Message

        if isinstance(event, Message):
            print(f"advstudio: {event.text}", file=sys.stderr)


def perturbation_paths(out: Path, seeds: list[int]) -> dict[int, Path]:
    """Where each seed's perturbation goes: OUT itself for one seed, else STEM-seedS.wav."""
    if len(seeds) == 1:
        return {seeds[0]: out}
    return {seed: out.with_name(f"{out.stem}-seed{seed}{out.suffix}") for seed in seeds}


def _check_perturbation_outputs(
    paths: dict[int, Path], json_path: str | None, overwrite: bool
) -> None:
    """Each perturbation and its sidecar may be written, and --json is neither of them."""
    from advstudio.core.attacks.universal import sidecar_path
    from advstudio.core.audio.io import check_export_path
    from advstudio.core.output_paths import check_output_file

    for path in paths.values():
        check_export_path(check_output_file(path, overwrite), PERTURBATION_SUBTYPE, overwrite)
        check_output_file(sidecar_path(path), overwrite)
        if json_path is not None and Path(json_path).resolve() == sidecar_path(path).resolve():
            raise ParameterError(
                f"--json {json_path} is the perturbation's sidecar; choose another name"
            )


def _sidecar(
    args: argparse.Namespace, model: AudioClassifier, result: UniversalResult, note: str
) -> dict:
    """What the JSON beside a perturbation says: the model, the budget, the reference level,
    the goal, the seed and how it was fitted."""
    from advstudio.core.models.base import fingerprint
    from advstudio.core.reports.provenance import model_name

    spec = result.spec
    return {
        "model": model_name(args.model),
        "model_fingerprint": fingerprint(model),
        "labels": list(model.labels),
        "target": None if spec.target is None else model.labels[spec.target],
        "budget": spec.budget_text,
        "linf": spec.linf,
        "snr_db": spec.snr_db,
        "reference_rms": result.reference_rms,
        "reference": "median RMS of the fitting clips",
        "seed": spec.seed,
        "seconds": spec.seconds,
        "sample_rate": result.sample_rate,
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "sample_format": PERTURBATION_SUBTYPE,
        "split": note,
    }


def _write_outputs(
    args: argparse.Namespace,
    paths: dict[int, Path],
    outputs: dict[str, Path | None],
    study: UniversalStudy,
    model: AudioClassifier,
    note: str,
) -> int:
    """Each fitted seed's perturbation, sidecar and table; the JSON and report (with several
    seeds: every seed, and the held-out fooling rate's mean and spread). The exit status."""
    from advstudio.cli import EXIT_SOME_FAILED
    from advstudio.core.attacks.universal import sidecar_path
    from advstudio.core.audio import save_audio
    from advstudio.core.evaluation.universal_study import held_out_spread
    from advstudio.core.reports.universal import (
        format_seed_summary,
        format_universal_table,
        write_universal_report,
        write_universal_seeds_report,
    )

    several = len(paths) > 1
    sidecars = {}
    for seed, result in study.results.items():
        out = paths[seed]
        save_audio(
            out, result.perturbation, result.sample_rate, PERTURBATION_SUBTYPE, args.overwrite
        )
        sidecars[seed] = _sidecar(args, model, result, note)
        sidecar_path(out).write_text(json.dumps(sidecars[seed], indent=2) + "\n")
        if several:
            print(f"seed {seed}:")
        print(format_universal_table(result, model.labels))
        print(f"perturbation written to {out} (sidecar {sidecar_path(out).name})")
    if not study.results:
        return EXIT_SOME_FAILED
    if several:
        spread = held_out_spread(study.results)
        print(format_seed_summary(study.results, spread))
        results = {
            "seeds": [study.results[s].to_json() | sidecars[s] for s in sorted(study.results)],
            "failed": {str(seed): message for seed, message in study.failed.items()},
            "held_out_fooling_rate": spread,
        }
        if outputs["json_path"] is not None:
            outputs["json_path"].write_text(json.dumps(results, indent=2) + "\n")
        if outputs["report_dir"] is not None:
            write_universal_seeds_report(
                outputs["report_dir"], study.results, model.labels, sidecars, results,
                args.overwrite,
            )  # fmt: skip
    else:
        ((seed, result),) = study.results.items()
        if outputs["json_path"] is not None:
            outputs["json_path"].write_text(
                json.dumps(result.to_json() | sidecars[seed], indent=2) + "\n"
            )
        if outputs["report_dir"] is not None:
            write_universal_report(
                outputs["report_dir"], result, model.labels, sidecars[seed], args.overwrite
            )
    return EXIT_SOME_FAILED if study.failed else 0


def _cmd_universal(args: argparse.Namespace) -> int:
    from advstudio.cli import check_outputs_free, open_data
    from advstudio.cli_output import ProgressBarReporter
    from advstudio.core.attacks.universal import UniversalSpec, fit_and_held_out
    from advstudio.core.evaluation.cluster import make_executor
    from advstudio.core.evaluation.model_source import ModelSource
    from advstudio.core.evaluation.universal_study import (
        run_universal_study,
        seed_specs,
        showing_epochs,
    )
    from advstudio.core.labels import match_label
    from advstudio.core.models import load_model
    from advstudio.core.reports.provenance import model_name
    from advstudio.core.training import versions

    UniversalSpec(linf=args.linf, snr_db=args.snr_db).check()  # a budget, before any work
    if args.seeds < 1:
        raise ParameterError(f"--seeds must be at least 1, got {args.seeds}")
    seeds = list(range(args.seed, args.seed + args.seeds))
    paths = perturbation_paths(Path(args.output), seeds)
    _check_perturbation_outputs(paths, args.json, args.overwrite)
    outputs = check_outputs_free(args)
    executor = make_executor(args.executor, args.resources)
    model = load_model(args.model, labels=args.labels, device=args.device)
    target = None if args.target is None else match_label(args.target, model.labels, "target class")
    spec = UniversalSpec(
        linf=args.linf,
        snr_db=args.snr_db,
        seconds=args.seconds,
        target=target,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    spec.check()
    dataset = open_data(args.data, args).with_classes(model.labels)
    fit, held, note = fit_and_held_out(list(dataset.examples), args.split, args.seed)
    print(f"advstudio: {note}", file=sys.stderr)
    device = task_model_device(args)
    source = ModelSource.of(model, args.model, args.labels, device)
    several = len(seeds) > 1

    def show(fitted: UniversalSpec, step: dict[str, float]) -> None:
        print(
            f"{f'seed {fitted.seed}: ' if several else ''}epoch {step['epoch']}/{fitted.epochs}: "
            f"loss {step['loss']:.3f}, draws fooled {step['fooled']:.0%}",
            file=sys.stderr,
        )

    reporter = _MessagesOnly() if args.executor == "local" else ProgressBarReporter()
    if hasattr(executor, "describe"):
        print(f"advstudio: {executor.describe()}", file=sys.stderr)
    config = {"command": "universal", "data": args.data, "split": note, "seeds": seeds}
    with task_store(args.db) as store, showing_epochs(show):
        run_id = store.start_run(model_name(args.model), config | asdict(spec), versions(), device)
        study = run_universal_study(
            source,
            [e.path for e in fit],
            [e.path for e in held],
            seed_specs(spec, len(seeds)),
            store,
            run_id,
            executor,
            reporter,
        )
    for seed, message in sorted(study.failed.items()):
        print(f"advstudio: failed: seed {seed}: {message}", file=sys.stderr)
    return _write_outputs(args, paths, outputs, study, model, note)


def _cmd_apply_universal(args: argparse.Namespace) -> int:
    from advstudio.core.attacks.universal import apply_universal, load_perturbation
    from advstudio.core.audio import load_audio, save_audio
    from advstudio.core.output_paths import check_output_folder

    folder = check_output_folder(args.output, overwrite=True)
    if args.offset < 0:
        raise ParameterError(f"--offset must be 0 or more seconds, got {args.offset}")
    plan = {}
    for name in args.files:
        target = folder / (Path(name).stem + ".wav")
        if target in plan.values():
            raise ParameterError(f"{name}: another input also writes {target.name}")
        if target.exists() and not args.overwrite:
            raise ExportExistsError(
                f"{target}: already exists; choose another folder or --overwrite"
            )
        plan[name] = target
    load_perturbation(args.perturbation, None)  # not audio: one line before any work
    folder.mkdir(exist_ok=True)
    for name, target in plan.items():
        audio = load_audio(name)
        perturbation = load_perturbation(args.perturbation, audio.sample_rate)
        offset = round(args.offset * audio.sample_rate) % len(perturbation)
        save_audio(
            target,
            apply_universal(audio.samples, perturbation, offset),
            audio.sample_rate,
            "PCM16",
            args.overwrite,
        )
        print(target)
    return 0


def add_universal_commands(
    sub: argparse._SubParsersAction,
    dataset_options: Callable[[argparse.ArgumentParser], None],
    model_options: Callable[[argparse.ArgumentParser], None],
    executor_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    p = sub.add_parser(
        "universal",
        help="fit one perturbation that fools the model on many clips, and test it on held-out "
        "files",
    )
    p.add_argument("data", help="dataset folder, CSV or GTZAN root")
    p.add_argument("--linf", type=float, metavar="E", help="L-inf bound, full scale")
    p.add_argument(
        "--snr-db",
        type=float,
        metavar="S",
        help="perturbation RMS S dB under the reference level (the median RMS of the fitting "
        "clips); the SNR each clip gets is measured and reported",
    )
    p.add_argument("--target", help="a class every clip should become (default: untargeted)")
    p.add_argument("--seconds", type=float, default=1.0, help="perturbation length (default 1)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=21)
    p.add_argument(
        "--split",
        help="FIT,HELD_OUT split names (default train,validation where the data has both; "
        "otherwise, or with all, each class's files halved with the seed)",
    )
    p.add_argument(
        "-o", "--output", required=True, help="perturbation to write (.wav, 32-bit float)"
    )
    p.add_argument("--json", help="write the per-clip results as JSON")
    p.add_argument("--report", help="folder for an HTML report")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="fit N perturbations, seeds SEED, SEED+1, ... (in parallel on a cluster); with "
        "N > 1 each is written as STEM-seedS.wav and the results give the held-out fooling "
        "rate's mean and spread over the seeds (default 1)",
    )
    add_task_store_option(p)
    p.add_argument("--overwrite", action="store_true")
    dataset_options(p)
    executor_options(p)
    model_options(p)
    p.set_defaults(func=_cmd_universal)

    p = sub.add_parser(
        "apply-universal",
        help="add a saved universal perturbation to files (tiled to each file's length, "
        "resampled to its rate) and write them as 16-bit WAV",
    )
    p.add_argument("perturbation", metavar="PERT.wav")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-o", "--output", required=True, help="folder for the perturbed files")
    p.add_argument(
        "--offset",
        type=float,
        default=0.0,
        metavar="S",
        help="start S seconds into the perturbation (default 0)",
    )
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_apply_universal)
