"""The `advstudio` command: the desktop application by default, subcommands for batch work.

Every user error ends as one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from advstudio import __version__
from advstudio.cli_audit import add_audit_command
from advstudio.cli_defend import add_defend_commands
from advstudio.cli_detect import add_detect_commands
from advstudio.cli_output import ProgressBarReporter, report_error
from advstudio.cli_tasks import add_task_store_option, task_model_device, task_store
from advstudio.cli_universal import add_universal_commands
from advstudio.core.device import configure_threads
from advstudio.core.errors import AdvStudioError, ParameterError

if TYPE_CHECKING:  # the subcommands import the engine only when they run (a quick --help)
    from advstudio.core.audio import Audio
    from advstudio.core.data.datasets import Dataset, Example
    from advstudio.core.models.base import AudioClassifier
    from advstudio.core.training import TrainConfig

EXIT_USER_ERROR = 2
EXIT_SOME_FAILED = 1
EXIT_NOT_FOUND = 3  # attack: no adversarial file written (see ATTACK_EXIT_STATUS)
ATTACK_EXIT_STATUS = (
    "exit status: 0 when the written file is adversarial; 3 when no adversarial example was "
    "found, when its success did not survive writing the file, or when the clip is already "
    "classified as the target (then nothing is written); 2 for a usage or input error. "
    "With --target every-label, OUTPUT names one file per class (out.wav -> "
    "out.03-Bass_guitar.wav; none for the class the file already is), and the status is 0 "
    "only when every file written is adversarial"
)


def _cmd_gui(args: argparse.Namespace) -> int:
    from advstudio.gui.app import run_app

    return run_app(model_path=args.model, selftest=getattr(args, "selftest", False))


def _cmd_classify(args: argparse.Namespace) -> int:
    from advstudio.core.inference import FileError, classify_files
    from advstudio.core.models import load_model

    model = load_model(args.model, labels=args.labels, device=args.device)
    results = classify_files(model, args.files)
    for r in results:
        if isinstance(r, FileError):
            print(f"advstudio: {r.message}", file=sys.stderr)
        elif r.conversions:
            print(f"advstudio: {r.path}: {r.conversions}", file=sys.stderr)
    failed = [r for r in results if isinstance(r, FileError)]
    ok = [r for r in results if not isinstance(r, FileError)]
    if args.json:
        rows = [
            {"file": str(r.path), "error": r.message}
            if isinstance(r, FileError)
            else {
                "file": str(r.path),
                "label": r.label,
                "probabilities": r.probabilities,
                "source_rate": r.source_rate,
                "source_channels": r.source_channels,
                "model_rate": model.sample_rate,
            }
            for r in results
        ]
        print(json.dumps(rows, indent=2))
    else:
        for r in ok:
            top = "  ".join(f"{label} {p:.3f}" for label, p in r.top(3))
            print(f"{r.path}\t{top}")
    return EXIT_SOME_FAILED if failed else 0


def _cmd_score(args: argparse.Namespace) -> int:
    from advstudio.core.evaluation.scoring import score_examples
    from advstudio.core.models import load_model
    from advstudio.core.reports.scores import format_scores

    model = load_model(args.model, labels=args.labels, device=args.device)
    dataset = open_data(args.data, args)
    selection = select_examples(dataset, args.split, model.labels, "scoring")
    if selection.note:
        print(f"advstudio: {selection.note}", file=sys.stderr)
    scored = score_examples(model, selection.examples, ProgressBarReporter())
    for failure in scored.failed:
        print(f"advstudio: {failure['error']}", file=sys.stderr)
    if args.json:
        results = {"model": args.model or "shipped instrument model", "data": args.data}
        results |= {**scored.scores, "answers": scored.answers, "failed": scored.failed}
        print(json.dumps(results, indent=2))
    else:
        print(format_scores(scored.scores, model.labels))
    return EXIT_SOME_FAILED if scored.failed else 0


def recipe_config(args: argparse.Namespace, **more: Any) -> TrainConfig:
    """The training settings of `recipe_options` (and `more`) over the preset's."""
    from advstudio.core.training import config_from_preset

    return config_from_preset(
        args.preset,
        args.arch,
        hidden=args.hidden,
        dropout=args.dropout or None,
        excerpts=args.excerpts or None,
        short_excerpts=args.short_excerpts,
        init=args.init,
        trim_db=args.trim_db,
        level_db=args.level_db,
        epochs=args.epochs,
        validate_every=args.validate_every,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        **more,
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from advstudio.core.data.datasets import NO_HOLD_OUT, held_out_group
    from advstudio.core.evaluation.loso_results import expected_accuracy
    from advstudio.core.training import train, write_model_card

    dataset = open_data(args.data, args)
    if args.hold_out_group is not None:
        dataset = held_out_group(dataset, args.hold_out_group)
    validate = args.hold_out_group != NO_HOLD_OUT
    config = recipe_config(
        args,
        select_best=None if validate else False,  # nothing to choose on: the last epoch
        adversarial=args.adversarial,
        adversary_model=args.adversary_model,
        sign_step=args.sign_step,
        sign_snr_db=args.sign_snr,
        pgd_eps=args.pgd_eps,
        pgd_steps=args.pgd_steps,
        pgd_step=args.pgd_step,
        distill=args.distill,
        temperature=args.temperature,
    )
    expected = None
    if args.loso is not None:  # before training: a wrong folder is one line, not a lost hour
        expected = expected_accuracy(Path(args.loso), config, dataset)
    out = Path(args.out)
    card = train(
        dataset,
        out,
        config,
        ProgressBarReporter(),
        resume=args.resume,
        validate=validate,
        expected_accuracy=expected,
    )
    # The run, however often it was resumed.
    command = shlex.join(["advstudio", *(a for a in args.argv if a != "--resume")])
    write_model_card(out, card, dataset.description, command)
    val = card["validation"]
    if val is None:
        print(f"trained on all {len(dataset.examples)} clips (no validation); model in {out}")
        return 0
    print(
        f"validation accuracy {val['accuracy']:.3f} (normalised {val['normalised_accuracy']:.3f}); "
        f"model written to {args.out}"
    )
    return 0


def _cmd_loso(args: argparse.Namespace) -> int:
    from advstudio.core.evaluation.leave_one_group_out import REPORT_NAME, leave_one_group_out

    dataset = open_data(args.data, args)
    # No choice on the held-out group: each fold keeps its last epoch.
    config = recipe_config(args, select_best=False)
    out = Path(args.out)
    results = leave_one_group_out(dataset, out, config, ProgressBarReporter())
    for condition, s in results["summary"].items():
        if s["groups"]:
            print(
                f"{condition}: mean accuracy over {s['groups']} groups {s['mean_accuracy']:.3f}, "
                f"worst {s['min_group']} {s['min_accuracy']:.3f}"
            )
    print(f"leave-one-group-out written to {out / REPORT_NAME}")
    return 0


def _cmd_loso_compare(args: argparse.Namespace) -> int:
    from advstudio.core.atomic import write_atomically
    from advstudio.core.evaluation.loso_comparison import compare_runs, comparison_report
    from advstudio.core.output_paths import check_output_file

    json_path = None if args.json is None else check_output_file(args.json, args.overwrite)
    comparison = compare_runs(Path(args.first), Path(args.second))
    print(comparison_report(comparison), end="")
    if json_path is not None:
        text = json.dumps(comparison, indent=2) + "\n"
        write_atomically(json_path, lambda tmp: Path(tmp).write_text(text))
        print(f"comparison written to {json_path}")
    return 0


def _cmd_attack(args: argparse.Namespace) -> int:
    from advstudio.core.attacks import make_attack
    from advstudio.core.attacks.every_label import EVERY_LABEL, check_every_label
    from advstudio.core.audio.io import check_export_path
    from advstudio.core.data.datasets import folder_class
    from advstudio.core.models import load_model
    from advstudio.core.output_paths import check_output_file, per_label_files
    from advstudio.core.reports.export import export_and_reclassify
    from advstudio.core.reports.study import study_json

    every_label = args.target == EVERY_LABEL
    # every-label writes beside OUTPUT, not to it (per_label_files checks those files)
    out = check_output_file(args.output, args.overwrite or every_label)
    check_export_path(out, args.subtype, args.overwrite or every_label)
    model = load_model(args.model, labels=args.labels, device=args.device)
    attack = make_attack(args.attack, args.preset, **attack_params(args))
    outputs = []
    if every_label:
        check_every_label(len(model.labels), [attack])
        outputs = per_label_files(out, model.labels, args.overwrite)
    audio = load_part(args.file, model, args.start, args.duration)
    if audio.conversions:
        print(f"advstudio: {args.file}: {audio.conversions}", file=sys.stderr)
    reporter = ProgressBarReporter({attack.name: attack.max_iter})
    # The file's class, when its folder names one: the directives (wrong, right) need it, and
    # untargeted success then excludes it too.
    label = folder_class(args.file, model.labels)
    if every_label:
        return _attack_every_label(args, model, attack, audio, label, outputs, reporter)
    (result,) = attack.run(
        model,
        [audio.samples],
        args.target,
        None if label is None else [label],
        seed=args.seed,
        reporter=reporter,
    )
    labels = model.labels
    report = {
        "file": str(args.file),
        "output": None if result.already else str(out),
        "attack": attack.name,
        "params": attack.params,
        "seed": args.seed,
        "original": labels[result.orig_pred],
        "target": None if result.target is None else labels[result.target],
        "already": result.already,
        "success": result.success,
        "warnings": result.warnings,
    }
    for warning in result.warnings:
        print(f"advstudio: warning: {warning}", file=sys.stderr)
    if result.already:
        if args.json:
            print(study_json(report))  # inf and NaN as null
        else:
            print(f"{args.file}: already classified as {report['original']}; nothing to attack")
        return EXIT_NOT_FOUND
    check = export_and_reclassify(model, result.adversarial, out, args.subtype, args.overwrite)
    survived = result.holds_for(check.prediction, check.confidence)
    eot = attack.eot()
    if eot is not None and result.survival_rate is not None:  # fresh draws of the file
        if eot.optimise.note:  # a codec that resamples, say (set when the run bound it)
            print(f"advstudio: EoT: {eot.optimise.note}", file=sys.stderr)
        (rate,) = eot.survival(model, [result], [check.samples], args.seed, 1)
        survived = result.success and bool(rate >= eot.required_rate)
        report["survival_rate"] = float(rate)
    # The magnitude-domain attack's own constraint, on the file as written (None: waveform).
    spectral_snr = attack.spectral_snr_db(audio.samples, check.samples)
    report |= {
        "iterations": result.iterations,
        "first_success_iteration": result.iterations if result.success else None,
        "steps": result.steps,
        "snr_db": result.snr_db,
        **({} if spectral_snr is None else {"spectral_snr_db": spectral_snr}),
        "linf": result.linf,
        "reloaded_prediction": labels[check.prediction],
        "reloaded_confidence": check.confidence,
        "subtype": args.subtype,
        "survived_quantisation": survived,
        "start": args.start or 0.0,
        "duration": audio.duration,
        "source_rate": audio.source_sample_rate,
        "source_channels": audio.source_channels,
        "model_rate": model.sample_rate,
    }
    if args.json:
        print(study_json(report))
    else:
        target = f" -> target {report['target']}" if report["target"] else " (untargeted)"
        verdict = "adversarial" if result.success else "no adversarial example found"
        spectral = "" if spectral_snr is None else f", spectral SNR {spectral_snr:.2f} dB"
        print(
            f"{args.file}: {report['original']}{target}: {verdict} after "
            f"{result.iterations} iterations, SNR {result.snr_db:.2f} dB{spectral}, "
            f"L-inf {result.linf:.5f}"
        )
        print(
            f"{out} ({args.subtype}) re-loaded: {report['reloaded_prediction']} "
            f"({check.confidence:.3f}); "
            + (
                "the attack survived quantisation"
                if survived
                else "the attack did NOT survive quantisation"
                if result.success
                else ""
            )
        )
        if "survival_rate" in report:
            print(
                f"through fresh draws of {attack.params['eot']}: the goal holds in "
                f"{report['survival_rate']:.3f} of {eot.draws} (success needs "
                f"{eot.required_rate})"
            )
    return 0 if survived else EXIT_NOT_FOUND


def _attack_every_label(args, model, attack, audio, label, outputs, reporter) -> int:
    """The file attacked towards every class (one batch of one row per class), one file
    written per class it was not already, and its one-row file x label matrix printed."""
    from advstudio.core.attacks.every_label import EVERY_LABEL, expand
    from advstudio.core.evaluation.label_matrix import file_cells, format_label_matrix, label_matrix
    from advstudio.core.reports.export import export_and_reclassify
    from advstudio.core.reports.study import study_json

    rows = expand([audio.samples], len(model.labels), None if label is None else [label])
    results = attack.run(
        model,
        rows.clips,
        EVERY_LABEL,
        rows.labels,
        seed=args.seed,
        items=rows.items,
        batch_size=len(rows.clips),
        reporter=reporter,
        targets=rows.target,
    )
    checks = [
        None
        if result.already
        else export_and_reclassify(model, result.adversarial, path, args.subtype, args.overwrite)
        for result, path in zip(results, outputs, strict=True)
    ]
    cells = file_cells(str(args.file), audio.samples, results, checks)
    matrix = label_matrix(cells, [str(args.file)], model.labels, f"{attack.title} {args.file}")
    written = {
        model.labels[k]: str(check.path) for k, check in enumerate(checks) if check is not None
    }
    if args.json:
        report = {
            "file": str(args.file),
            "attack": attack.name,
            "params": attack.params,
            "seed": args.seed,
            "original": model.labels[results[0].orig_pred],
            "subtype": args.subtype,
            "outputs": written,
            "every_label": matrix,
        }
        print(study_json(report))
    else:
        print(format_label_matrix(matrix))
        print(f"{len(written)} files written beside {args.output} ({args.subtype})")
    attacked = [cell for cell in cells if not cell["already"]]
    return 0 if attacked and all(cell["success"] for cell in attacked) else EXIT_NOT_FOUND


def load_part(
    path: str, model: AudioClassifier, start: float | None, duration: float | None
) -> Audio:
    """The file at the model's rate, or the part `--start`/`--duration` chose of it."""
    from advstudio.core.audio.segment import segment
    from advstudio.core.inference import check_long_enough, load_for_model

    audio = load_for_model(path, model)
    if start is None and duration is None:
        return audio
    return check_long_enough(segment(audio, start or 0.0, duration), model)


def print_failures(failed: list[dict]) -> None:
    """One line per cell that failed for its input (recorded in the store; a rerun retries)."""
    for failure in failed:
        print(
            f"advstudio: failed: {failure['attack']} seed {failure['seed']}: {failure['message']}",
            file=sys.stderr,
        )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from advstudio.core.attacks.params import parse_assignments
    from advstudio.core.evaluation.cluster import make_executor
    from advstudio.core.evaluation.label_matrix import format_label_matrix
    from advstudio.core.evaluation.store import ResultStore, default_store_path
    from advstudio.core.evaluation.study import StudySpec, run_study
    from advstudio.core.evaluation.summary import sweep_rows
    from advstudio.core.models import load_model
    from advstudio.core.progress import Message
    from advstudio.core.reports.audio_examples import RECREATED_NOTE, recreate_examples
    from advstudio.core.reports.html import write_report_bundle
    from advstudio.core.reports.provenance import model_name, split_used
    from advstudio.core.reports.study import format_sweep, format_table, write_study_json
    from advstudio.core.resources import demo_clips_dir

    outputs = check_outputs_free(args)
    model = load_model(args.model, labels=args.labels, device=args.device)
    dataset = open_data(args.data or demo_clips_dir(), args)
    selection = select_examples(dataset, args.split, model.labels)
    if selection.note:
        print(f"advstudio: {selection.note}", file=sys.stderr)
    grid = {k: v.split(",") for k, v in parse_assignments(args.grid).items()}
    sweep = sweep_parameter(args.sweep, grid)
    spec = StudySpec(
        attacks=[a.strip() for a in args.attack.split(",") if a.strip()],
        preset=None if grid and not sweep and args.preset is None else (args.preset or "paper"),
        grid=grid,
        params=attack_params(args),
        seeds=args.seeds,
        target=canonical_target(args.target, model.labels),
        min_found=args.min_found,
        noise_control=args.noise_control,
        noise_snr_db=args.noise_snr,
        batch_size=args.batch_size,
        survival=args.survival,
        survival_draws=survival_draws(args),
    )
    iterations = {name: max(a.max_iter for a in spec.settings(name)) for name in spec.attacks}
    if sweep:
        check_sweep_numeric(sweep, spec.attacks)
    executor = make_executor(
        args.executor, args.resources, model, args.model, args.labels, args.device
    )
    reporter = ProgressBarReporter(iterations)
    if hasattr(executor, "describe"):
        reporter.report(Message("evaluate", executor.describe()))
    with ResultStore(args.db or default_store_path()) as store:
        summary = run_study(model, selection.examples, spec, store, reporter, executor=executor)
    if sweep:
        summary["sweep"] = {"parameter": sweep, "rows": sweep_rows(summary["settings"], sweep)}
    print(format_table(summary))
    if sweep:
        print(format_sweep(summary["sweep"]))
    for matrix in summary.get("every_label", []):
        print(format_label_matrix(matrix))
    for row in summary["table"]:
        if row["n_adversarial"] < spec.min_found:
            print(
                f"{row['title']}: no setting found {spec.min_found} adversarial examples; "
                "shown is the one that found the most"
            )
    print_failures(summary["failed"])
    if outputs["json_path"] is not None:
        write_study_json(summary, outputs["json_path"])
    if outputs["report_dir"] is not None:
        config = {
            "model": model_name(args.model),
            "attacks": spec.attacks,
            "preset": spec.preset,
            "grid": spec.grid,
            "params": spec.params,
            "target": spec.target,
            "data": args.data or "demo",
            "data_root": args.data or demo_clips_dir(),
            "split": split_used(selection.examples),
            "device": str(model.device),
            "examples_note": RECREATED_NOTE,
        }
        audio = recreate_examples(model, selection.examples, summary, spec.target)
        write_report_bundle(outputs["report_dir"], summary, audio, config, overwrite=args.overwrite)
    return EXIT_SOME_FAILED if summary["failed"] else 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from advstudio.cli_defend import spread
    from advstudio.core.attacks.params import parse_assignments
    from advstudio.core.evaluation.cluster import make_executor
    from advstudio.core.evaluation.paper004 import (
        ExperimentModel,
        ExperimentSpec,
        model_setting,
        run_paper004,
    )
    from advstudio.core.evaluation.store import ResultStore, default_store_path
    from advstudio.core.models import load_model
    from advstudio.core.reports.paper004 import write_paper004_report
    from advstudio.core.reports.provenance import model_name, split_used
    from advstudio.core.reports.study import write_study_json
    from advstudio.core.training import versions

    outputs = check_outputs_free(args)
    check_counts(args)
    spec = ExperimentSpec(
        snr_db=number_list(args.snr_db, "--snr-db"),
        every_label_files=args.every_label_files,
        params=parse_assignments(args.param),
        batch_size=args.batch_size,
    )
    paths = [p.strip() for p in args.models.split(",") if p.strip()]
    names = [model_name(p) for p in paths]
    if len(set(names)) < len(names):  # two folders of one name: tell them apart by path
        names = paths
    dataset = open_data(args.data, args)
    entries = []
    for path, name in zip(paths, names, strict=True):
        model = load_model(path, device=args.device)
        architecture, training, validation = model_setting(path)
        examples = spread(select_examples(dataset, args.split, model.labels).examples, args.limit)
        executor = make_executor(args.executor, args.resources, model, path, None, args.device)
        entries.append(
            ExperimentModel(
                name, model, examples, architecture, training, validation, executor
            )
        )
    with ResultStore(args.db or default_store_path()) as store:
        results = run_paper004(entries, spec, store, ProgressBarReporter())
    print_failures(results["failed"])
    for finding in results["findings"]:
        print(f"({finding['id']}) {finding['claim']}: {finding['verdict']}")
        for part in finding["parts"]:
            print(f"    {part}")
    if outputs["json_path"] is not None:
        write_study_json(results, outputs["json_path"])
    if outputs["report_dir"] is not None:
        config = {
            "data": args.data,
            "data_root": args.data,
            "split": split_used(entries[0].examples),
            "device": str(entries[0].model.device),
            "versions": versions(),
            "models": paths,
        }
        written = write_paper004_report(outputs["report_dir"], results, config, args.overwrite)
        print(f"report written: {written['report.html']}")
    return EXIT_SOME_FAILED if results["failed"] else 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    from advstudio.core.attacks import make_attack
    from advstudio.core.attacks.every_label import EVERY_LABEL
    from advstudio.core.evaluation.cluster import make_executor
    from advstudio.core.evaluation.model_source import ModelSource
    from advstudio.core.evaluation.transfer import run_transfer
    from advstudio.core.models import load_model
    from advstudio.core.models.ensemble import align_labels
    from advstudio.core.progress import Message
    from advstudio.core.reports.provenance import model_name, split_used
    from advstudio.core.reports.study import write_study_json
    from advstudio.core.reports.transfer import format_transfer, write_transfer_report

    outputs = check_outputs_free(args)
    check_counts(args)
    attack = make_attack(args.attack, args.preset, **attack_params(args))
    paths = [p.strip() for p in args.models.split(",") if p.strip()]
    if not paths:
        raise ParameterError("--models: name at least one model")
    names = [model_name(p) for p in paths]
    if len(set(names)) < len(names):  # two folders of one name: tell them apart by path
        names = paths
    ensembles = [ensemble_members(text, paths, names) for text in args.ensemble]
    mapping = read_label_map(args.label_map) if args.label_map else None
    loaded = [load_model(p, device=args.device) for p in paths]
    models = dict(zip(names, align_labels(loaded, names, mapping), strict=True))
    labels = next(iter(models.values())).labels
    target = canonical_target(args.target, labels)
    if target == EVERY_LABEL:
        raise ParameterError(
            "--target every-label is not a transfer target; name a class, random, "
            "least-likely or untargeted"
        )
    dataset = open_data(args.data, args)
    selection = select_examples(dataset, args.split, labels)
    if selection.note:
        print(f"advstudio: {selection.note}", file=sys.stderr)
    executor = make_executor(args.executor, args.resources)
    # a cluster's tasks load each model from its path (as loaded, before --label-map)
    remote_device = task_model_device(args)
    sources = {
        name: ModelSource.of(
            model, path, None, str(model.device) if args.executor == "local" else remote_device
        )
        for name, model, path in zip(names, loaded, paths, strict=True)
    }
    reporter = ProgressBarReporter({attack.name: attack.max_iter})
    if hasattr(executor, "describe"):
        reporter.report(Message("transfer", executor.describe()))
    # without --report the examples live in each task's temporary folder, as before in one
    folder = None if outputs["report_dir"] is None else outputs["report_dir"] / "examples"
    with task_store(args.db) as store:
        results = run_transfer(
            models,
            ensembles,
            selection.examples,
            attack,
            target,
            folder,
            seed=args.seed,
            batch_size=args.batch_size,
            reporter=reporter,
            sources=sources,
            label_map=mapping,
            store=store,
            executor=executor,
        )
    print(format_transfer(results))
    for failure in results["failed"]:
        print(f"advstudio: failed: {failure['task']}: {failure['message']}", file=sys.stderr)
    if outputs["json_path"] is not None:
        write_study_json(results, outputs["json_path"])
    if outputs["report_dir"] is not None:
        config = {
            "data": args.data,
            "split": split_used(selection.examples),
            "device": str(next(iter(models.values())).device),
            "paths": paths,
        }
        written = write_transfer_report(outputs["report_dir"], results, config, args.overwrite)
        print(f"report written: {written['report.html']} (examples in {folder})")
    return EXIT_SOME_FAILED if results["failed"] else 0


def read_label_map(path: str) -> dict[str, str]:
    """--label-map FILE: a JSON object {model label: common label}, or one line saying why
    the file is not one."""
    try:
        mapping = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"--label-map {path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ParameterError(f"--label-map {path}: invalid JSON ({exc})") from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise ParameterError(
            f"--label-map {path}: expected a JSON object of model label -> common label"
        )
    return mapping


def ensemble_members(text: str, paths: Sequence[str], names: Sequence[str]) -> tuple[str, ...]:
    """--ensemble A,B: two or more of the --models, each by its path, its file or folder
    name, or its name in the table."""
    by_either = {n: n for n in names}
    for path, name in zip(paths, names, strict=True):
        by_either |= {path: name, Path(path).name: name}
    members = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in members if m not in by_either]
    if unknown:
        raise ParameterError(
            f"--ensemble {text}: {', '.join(unknown)} is not one of --models ({', '.join(names)})"
        )
    chosen = tuple(dict.fromkeys(by_either[m] for m in members))
    if len(chosen) < 2:
        raise ParameterError(f"--ensemble {text}: name two or more different models")
    return chosen


def number_list(text: str, option: str) -> list[float]:
    """Comma-separated numbers ("5,10,15"), one line naming the option when one is not."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"{option}: expected comma-separated numbers, got {text!r}") from None


def _cmd_render_demo(args: argparse.Namespace) -> int:
    from advstudio.core.data.render import render_demo_set

    metadata = render_demo_set(
        Path(args.out),
        args.per_class,
        args.seed,
        validation_font=args.validation_font,
        reporter=ProgressBarReporter(),
        version=args.version,
        fonts=[Path(f) for f in args.font],
    )
    print(f"demo set written: {metadata}")
    return 0


def open_data(path: str | Path, args: argparse.Namespace) -> Dataset:
    """The data set at `path` as --layout, --partition and --partition-seed say; what opening
    it skipped (excerpts missing from a GTZAN copy) is said in one line."""
    from advstudio.core.data.datasets import open_dataset

    dataset = open_dataset(path, args.layout, args.partition, args.partition_seed)
    if dataset.note:
        print(f"advstudio: {dataset.note}", file=sys.stderr)
    return dataset


def _cmd_render_music(args: argparse.Namespace) -> int:
    from advstudio.core.data.music import CARD_NAME, DEFAULT_CLASSES, render_music_set

    metadata = render_music_set(
        Path(args.out),
        args.per_class,
        seconds=args.seconds,
        seed=args.seed,
        classes=tuple(args.classes or DEFAULT_CLASSES),
        reporter=ProgressBarReporter(),
    )
    print(f"music set written: {metadata} (data card: {metadata.parent / CARD_NAME})")
    return 0


class Selection(NamedTuple):
    examples: list[Example]
    note: str  # what was chosen, when it is not every file


def select_examples(
    dataset: Dataset, split: str | None, labels: Sequence[str], doing: str = "attacking"
) -> Selection:
    """The files of a study, their classes spelled as the model's `labels`: the named split;
    by default the validation split of a layout that defines one, else every file (a plain
    folder's training split is only a rule for training, not a reason to leave files out)."""
    dataset = dataset.with_classes(labels)
    if split is None:
        split = "validation" if dataset.defined_split else "all"
    if split == "all" or len(dataset.splits) == 1:
        return Selection(list(dataset.examples), "")
    if split not in dataset.splits:
        raise ParameterError(
            f"{dataset.name}: no {split!r} split; it has "
            f"{', '.join(sorted(dataset.splits))} (or use --split all)"
        )
    chosen = list(dataset.subset(split).examples)
    note = (
        f"{doing} the {split} split: {len(chosen)} of {len(dataset.examples)} files; "
        "--split all for every file"
    )
    return Selection(chosen, note)


def sweep_parameter(assignments: list[str], grid: dict[str, list[str]]) -> str | None:
    """The one parameter `--sweep K=V1,V2,...` varies, put into `grid` (every value is run
    and reported, where a grid keeps only its best setting); None without --sweep."""
    from advstudio.core.attacks.params import parse_assignments

    swept = parse_assignments(assignments)
    if not swept:
        return None
    if len(swept) > 1 or grid:
        raise ParameterError("--sweep takes one parameter, and not together with --grid")
    ((key, values),) = swept.items()
    grid[key] = values.split(",")
    return key


def check_sweep_numeric(parameter: str, attacks: Sequence[str]) -> None:
    """A sweep is a curve over numbers: refuse, before any work, a parameter that some attack
    takes as text (a switch or a list belongs in --grid)."""
    from advstudio.core.attacks import ATTACKS

    for name in attacks:
        cls = ATTACKS[name]
        for param in cls.params_schema + cls.common_params:
            if param.name == parameter and param.kind is str:
                raise ParameterError(
                    f"--sweep needs a numeric parameter: {name}'s {parameter} is not a number"
                )


def canonical_target(target: str | None, labels: Sequence[str]) -> str | None:
    """A target class as the model spells it (so "bass guitar" and "Bass_guitar" share
    stored results); target modes and None unchanged."""
    from advstudio.core.attacks.goals import Goal, resolve_target

    if target is None:
        return None
    index = resolve_target(Goal(target), labels)
    return target if index is None else labels[index]


def check_counts(args: argparse.Namespace) -> None:
    """Refuse, before any work, a --batch-size that would batch nothing (a zero step crashes
    the batching) and a --limit that would leave no file."""
    counts = (("--batch-size", args.batch_size), ("--limit", getattr(args, "limit", None)))
    for option, value in counts:
        if value is not None and value < 1:
            raise ParameterError(f"{option} must be at least 1, got {value}")


def check_outputs_free(args: argparse.Namespace) -> dict[str, Path | None]:
    """Refuse before any work is done when an output could not be written or would be
    overwritten."""
    from advstudio.core.output_paths import check_output_file, check_output_folder

    return {
        "json_path": check_output_file(args.json, args.overwrite) if args.json else None,
        "report_dir": check_output_folder(args.report, args.overwrite) if args.report else None,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="advstudio",
        description="Adversarial robustness analysis of audio classifiers. "
        "Without a subcommand, opens the desktop application.",
    )
    parser.add_argument("--version", action="version", version=f"advstudio {__version__}")
    parser.set_defaults(func=_cmd_gui, model=None)
    sub = parser.add_subparsers(title="subcommands", metavar="COMMAND")

    def dataset_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--layout",
            choices=["folder", "csv", "fsdkaggle2019", "gtzan"],
            help="dataset layout (default: guessed)",
        )
        p.add_argument(
            "--partition",
            choices=["filtered", "random"],
            help="GTZAN's splits: filtered (default; fault-filtered, artist-disjoint "
            "443/197/290) or random (stratified 500/250/250)",
        )
        p.add_argument(
            "--partition-seed",
            type=int,
            metavar="N",
            help="seed of the random GTZAN partition (default 21)",
        )

    def store_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--db",
            help="SQLite result store (default ~/.local/share/advstudio/"
            "results.sqlite); a rerun resumes from it",
        )

    def split_option(p: argparse.ArgumentParser, verb: str) -> None:
        """Which split a command works on (select_examples reads it)."""
        p.add_argument(
            "--split",
            help=f"dataset split to {verb} (default: validation where the layout defines a "
            "split, e.g. a CSV split column, FSDKaggle2019 or GTZAN, else every file; test for "
            "GTZAN's test split; all for every file)",
        )

    def study_options(p: argparse.ArgumentParser, json_holds: str, report_holds: str) -> None:
        """The data, store and output options of a study (evaluate, experiment)."""
        dataset_options(p)
        split_option(p, "attack")
        p.add_argument("--batch-size", type=int, default=16)
        store_option(p)
        p.add_argument("--json", help=f"write {json_holds} as JSON")
        p.add_argument("--report", help=f"folder for {report_holds}")
        p.add_argument("--overwrite", action="store_true")

    def executor_options(p: argparse.ArgumentParser) -> None:
        """Where a study's cells run (evaluate, experiment)."""
        p.add_argument(
            "--executor",
            default="local",
            metavar="local|ray[:ADDRESS]",
            help="where the study's cells run: in this process (default) or as Ray tasks on a "
            "cluster (ADDRESS as `ray start --head` prints it; none: a Ray instance on this "
            "machine); needs pip install 'advstudio[cluster]'. Data and model paths must be "
            "ones every node sees; only this process writes the store",
        )
        p.add_argument(
            "--resources",
            default="cpus=1",
            metavar="cpus=N,gpus=N",
            help="what each Ray task reserves (default cpus=1; gpus=1 runs each batch on a GPU)",
        )

    def device_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when present)")
        p.add_argument(
            "--threads",
            type=int,
            help="CPU threads (default: $ADVSTUDIO_THREADS, else the cores not busy at start)",
        )

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            help="model directory, checkpoint or TorchScript file "
            "(default: the shipped instrument model)",
        )
        p.add_argument("--labels", help="labels file for a TorchScript model")
        device_options(p)

    p = sub.add_parser("gui", help="open the desktop application")
    p.add_argument("--model", help="model to open instead of the shipped one")
    p.add_argument(
        "--selftest",
        action="store_true",
        help="offscreen: load a demo clip, attack it, export audio and a report, "
        "exit 0 only if all of that worked",
    )
    p.set_defaults(func=_cmd_gui)

    p = sub.add_parser("classify", help="top-3 classes with probabilities for each file")
    p.add_argument("files", nargs="+", metavar="FILE")
    model_options(p)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser(
        "score",
        help="how well a model labels a data set as it is: accuracy, normalised accuracy, "
        "each class's accuracy and the confusion counts",
    )
    p.add_argument(
        "data", help="dataset folder, CSV (path,label[,split]), FSDKaggle2019 or GTZAN root"
    )
    dataset_options(p)
    split_option(p, "score")
    model_options(p)
    p.add_argument(
        "--json", action="store_true", help="print JSON (scores and each file's answer) instead"
    )
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser(
        "train", help="train a classifier (paper 002's CNN, paper 004's DNN or CDNN) on a dataset"
    )
    p.add_argument(
        "data", help="dataset folder, CSV (path,label[,split]), FSDKaggle2019 or GTZAN root"
    )
    p.add_argument("--out", required=True, help="model directory to write (holds checkpoints)")
    dataset_options(p)
    recipe_options(p)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument(
        "--hold-out-group",
        metavar="G",
        help="validate on the clips of source group G (the CSV's group column) and train on "
        "every other clip, ignoring the split column; none: train on every clip, no validation",
    )
    p.add_argument(
        "--loso",
        metavar="DIR",
        help="the folder of a leave-one-group-out run of this same recipe on this set "
        "(advstudio data loso --out DIR): its figures go in the model card as the expected "
        "accuracy on unseen sources",
    )
    p.add_argument(
        "--adversarial",
        choices=["none", "paper004", "pgd"],
        help="adversarial training: paper004 (every batch a signed step of --sign-step towards "
        "a random label from the fixed --adversary-model, in the input domain before "
        "standardisation, within an SNR ball of --sign-snr) or pgd (Madry's PGD on the "
        "waveform against the model being trained)",
    )
    p.add_argument(
        "--adversary-model",
        metavar="DIR",
        help="paper004: the fixed, trained model (same features and labels) giving the gradient",
    )
    p.add_argument(
        "--sign-step",
        type=float,
        metavar="S",
        help="paper004: step in the input domain (default 0.25: linear magnitude for dnn and "
        "cdnn, dB for cnn)",
    )
    p.add_argument(
        "--sign-snr",
        type=float,
        metavar="DB",
        help="paper004: the step is projected onto ||X' - X|| <= ||X|| 10^(-DB/20) of each "
        "clip's magnitudes (default 15, the reference code's; not for the cnn's dB features)",
    )
    p.add_argument(
        "--pgd-eps", type=float, metavar="E", help="pgd: L-inf bound, full scale (default 0.002)"
    )
    p.add_argument("--pgd-steps", type=int, metavar="K", help="pgd: steps (default 7)")
    p.add_argument("--pgd-step", type=float, metavar="S", help="pgd: step size (default 2.5 E / K)")
    p.add_argument(
        "--distill",
        metavar="TEACHER",
        help="defensive distillation: train on TEACHER's softmax at --temperature (soft labels)",
    )
    p.add_argument(
        "--temperature", type=float, default=1.0, metavar="T", help="distillation temperature"
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "attack", help="attack one file and export the adversarial audio", epilog=ATTACK_EXIT_STATUS
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--attack", required=True, help="fgsm, pgdn, cw, mscw or spectrogram")
    p.add_argument(
        "--target",
        help="a class name, random, random-any (any class, its own included: paper 004's "
        "random), least-likely, untargeted, or a directive: wrong (away "
        "from the file's class), right (to its class; the class comes from the folder name) "
        "or every-label (towards each class in turn: one output file per class) "
        "(default: the attack's own; random for cw and mscw)",
    )
    p.add_argument("--preset", help="named parameter set, e.g. paper")
    p.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="set one parameter (repeatable)"
    )
    eot_options(p)
    p.add_argument(
        "-o", "--output", required=True, help="adversarial audio to write (.wav or .flac)"
    )
    p.add_argument(
        "--subtype",
        default="PCM16",
        choices=["PCM16", "PCM24", "FLOAT"],
        help="sample format of the written file (default PCM16)",
    )
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--start", type=float, metavar="S", help="attack from S seconds into the file")
    p.add_argument(
        "--duration", type=float, metavar="D", help="attack D seconds (default: to the end)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    model_options(p)
    p.set_defaults(func=_cmd_attack)

    p = sub.add_parser("evaluate", help="the Table 1 study over a dataset")
    p.add_argument(
        "data", nargs="?", help="dataset folder, CSV or GTZAN root (default: the demo clips)"
    )
    p.add_argument(
        "--attack", required=True, help="comma-separated attacks, e.g. fgsm,pgdn,cw,mscw"
    )
    p.add_argument("--preset", help="preset of every attack (default paper; none with --grid)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="K=V1,V2",
        help="parameter values to search (repeatable; all combinations)",
    )
    p.add_argument("--param", action="append", default=[], metavar="K=V")
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="K=V1,V2",
        help="run every value of one numeric parameter and report accuracy, normalised "
        "accuracy and mean confidence per value (e.g. eps=0.001,0.01,0.1)",
    )
    p.add_argument(
        "--target",
        help="override every attack's target: a class, random, random-any (any class, its own "
        "included: paper 004's random), least-likely, untargeted, "
        "wrong (every file away from its class), right (every file to its class) or "
        "every-label (every file towards each class in turn: a file x label matrix)",
    )
    p.add_argument("--seeds", type=int, default=1, help="repetitions with seeds 21, 22, ...")
    p.add_argument(
        "--min-found",
        type=int,
        default=0,
        help="a grid setting must find this many adversarial examples",
    )
    p.add_argument(
        "--noise-control", action="store_true", help="white noise at the targeted attacks' mean SNR"
    )
    p.add_argument("--noise-snr", type=float, help="SNR of the noise control (dB)")
    eot_options(p)
    p.add_argument(
        "--survival",
        metavar="SPEC",
        default="",
        help="transforms every adversarial export goes through, one column each, e.g. "
        "mp3@32k,mp3@64k,opus@24k,resample@8k,lowpass@4k,room:small,room:hall,noise@20dB",
    )
    p.add_argument(
        "--survival-draws",
        type=int,
        metavar="N",
        help="fresh draws per random transform (default 20)",
    )
    study_options(p, "the study's results", "report.html, results.json and results.csv")
    executor_options(p)
    model_options(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "experiment",
        help="paper 004's experiments over several models, in one report",
        description="paper004: for each model, clean normalised accuracy; the spectrogram "
        "adversary (paper preset) with the random directive (a target over every class: "
        "right one time in C) and the all-wrong directive, swept over the SNR bound; the "
        "every-label ensemble on a few files; and whether the paper's findings hold. Every "
        "run goes through the result store: an interrupted experiment resumes.",
    )
    p.add_argument("experiment", choices=["paper004"], help="which experiment")
    p.add_argument("data", help="dataset folder, CSV or GTZAN root")
    p.add_argument(
        "--models",
        required=True,
        help="comma-separated model directories (normal and adversarially trained; each "
        "card.json says its architecture and training)",
    )
    p.add_argument(
        "--snr-db",
        default="0,5,10,15,20,25,30",
        help="SNR bounds of the sweep in dB (default 0,5,10,15,20,25,30; the all-wrong "
        "directive at the lowest judges adversarial training, the paper at 0 dB)",
    )
    p.add_argument(
        "--every-label-files",
        type=int,
        default=10,
        metavar="N",
        help="files attacked towards every label, taken in turn over the classes "
        "(default 10; 0: none)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a spectrogram adversary parameter over the paper preset (e.g. max_iter=50)",
    )
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="attack at most N files of the split, spread evenly over it (it is ordered by "
        "class, so every class keeps its share): 20 of the rendered music set's 500 "
        "validation excerpts make the six models' experiment fit a CPU",
    )
    study_options(p, "every number", "report.html and results.json")
    executor_options(p)
    device_options(p)
    p.set_defaults(func=_cmd_experiment)

    add_universal_commands(sub, dataset_options, model_options, executor_options)
    add_defend_commands(sub, dataset_options, model_options, executor_options)
    add_audit_command(sub, model_options, executor_options)
    add_detect_commands(sub, dataset_options, model_options)

    p = sub.add_parser(
        "transfer",
        help="do adversarial examples transfer between models? the matrix of transfer rates",
        description="Attack every file with each model (and each --ensemble), write every "
        "adversarial example as a 16-bit WAV, read it back and classify it with every model "
        "(resampled to each model's rate). Cell (source, target): the share of the source's "
        "adversarial examples that also fool the target (targeted: reach the target class; "
        "untargeted: change the target's clean decision, to a class other than the file's); "
        "the diagonal is the white-box success. Beside it: the clean agreement between models.",
    )
    p.add_argument("data", help="dataset folder, CSV or GTZAN root")
    p.add_argument(
        "--models", required=True, help="comma-separated model directories or files (A,B,C)"
    )
    p.add_argument("--attack", required=True, help="fgsm, pgdn, cw, mscw or spectrogram")
    p.add_argument("--preset", help="named parameter set, e.g. paper")
    p.add_argument("--param", action="append", default=[], metavar="K=V")
    eot_options(p)
    p.add_argument(
        "--target",
        help="a class name, random, least-likely or untargeted (default: the attack's own)",
    )
    p.add_argument(
        "--ensemble",
        action="append",
        default=[],
        metavar="A,B",
        help="attack these models at once (log of their mean probability) as a source row of "
        "its own (repeatable)",
    )
    p.add_argument(
        "--label-map",
        metavar="FILE",
        help="JSON {model label: common label} for models whose class names differ",
    )
    p.add_argument("--seed", type=int, default=21)
    dataset_options(p)
    split_option(p, "attack")
    p.add_argument("--batch-size", type=int, default=16)
    add_task_store_option(p)
    p.add_argument("--json", help="write every number as JSON")
    p.add_argument("--report", help="folder for report.html, results.json and the examples")
    p.add_argument("--overwrite", action="store_true")
    executor_options(p)
    device_options(p)
    p.set_defaults(func=_cmd_transfer)

    data = sub.add_parser("data", help="datasets: render the offline demo and music sets")
    data_sub = data.add_subparsers(title="data commands", metavar="COMMAND", required=True)
    p = data_sub.add_parser(
        "render-demo", help="render the 12-class instrument set from SoundFonts"
    )
    p.add_argument("out", help="folder to write (must not hold a rendered set already)")
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--validation-font",
        help="SoundFont held out of training for validation (default sf_GMbank; not with --font)",
    )
    p.add_argument(
        "--version",
        type=int,
        default=1,
        help="recipe: 1 single notes (the default, as before), 2 phrases, synthesised gongs and "
        "voices, recording conditions",
    )
    p.add_argument(
        "--font",
        action="append",
        default=[],
        metavar="SF2",
        help="version 2 from this SoundFont instead of the project's (repeatable): every clip "
        "for validation, to judge a model on fonts it never heard",
    )
    p.set_defaults(func=_cmd_render_demo)

    p = data_sub.add_parser(
        "render-music",
        help="render 30-second music excerpts from the music21 corpus (needs advstudio[render])",
    )
    p.add_argument("out", help="folder to write (must not hold a rendered set already)")
    p.add_argument(
        "--per-class",
        type=int,
        default=500,
        help="excerpts per class (default 500: the set the shipped music models learnt from)",
    )
    p.add_argument("--seconds", type=float, default=30.0, help="length of each excerpt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--classes",
        nargs="+",
        metavar="CLASS",
        help="classes to render (default: bach_chorales fiddle_tunes folk_songs trecento; "
        "monteverdi_madrigals and palestrina are also available)",
    )
    p.set_defaults(func=_cmd_render_music)

    p = data_sub.add_parser(
        "loso",
        help="leave-one-group-out: one model per source group held out, judged on it",
        description="Train one model per source group (the CSV's group column) on every other "
        "group, in OUT/holdout-GROUP (a finished fold is kept, an interrupted one resumes), and "
        "judge it on its held-out group: the clips as they are, the first second of each, one "
        "1-s excerpt of each at a seeded random position, and the phrases of at least 5 s. "
        "Writes OUT/loso.json and OUT/LOSO.md. Each fold keeps its last epoch (no model "
        "selection on the held-out group). Runs of the same command "
        "share the folds: each trains those no other run holds, then waits for the rest.",
    )
    p.add_argument("data", help="rendered set (folder with metadata.csv, or the CSV)")
    p.add_argument("--out", required=True, help="folder for the fold models and the report")
    dataset_options(p)
    recipe_options(p)
    p.set_defaults(func=_cmd_loso)

    p = data_sub.add_parser(
        "loso-compare",
        help="two leave-one-group-out runs side by side (a recipe's effect on held-out groups)",
        description="Print the figures of two `data loso` runs side by side, per condition, "
        "group and class (pooled), with the change B - A, the settings that differ and whether "
        "the held-out clips are the same. It chooses nothing: a recipe picked by these figures "
        "was chosen on held-out groups.",
    )
    p.add_argument("first", metavar="A", help="folder of the first run (its loso.json)")
    p.add_argument("second", metavar="B", help="folder of the second run")
    p.add_argument("--json", metavar="FILE", help="also write the comparison as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=_cmd_loso_compare)
    return parser


def recipe_options(p: argparse.ArgumentParser) -> None:
    """What a model is and how it trains, shared by train and data loso."""
    p.add_argument(
        "--arch",
        choices=["cnn", "dnn", "cdnn"],
        default="cnn",
        help="cnn: paper 002's instrument CNN (default); dnn, cdnn: paper 004's music models",
    )
    p.add_argument(
        "--preset",
        default="paper",
        help="paper (the architecture's paper's recipe, default) or modern (Adam, cosine; "
        "for cnn with augmentation and also called demo; see the README)",
    )
    p.add_argument("--hidden", type=int, help="dnn: units per hidden layer (50 or 500)")
    p.add_argument("--dropout", action="store_true", help="dnn: dropout after hidden layers")
    p.add_argument(
        "--excerpts",
        action="store_true",
        help="cnn: analyse a random excerpt of each clip just long enough for its training "
        "window instead of the whole clip (epochs about twice as fast on clips of 0.3-30 s; the "
        "dB floor is then the excerpt's)",
    )
    p.add_argument(
        "--short-excerpts",
        type=float,
        metavar="SHARE",
        help="cut this share (0-1) of the training files to a random 0.3-1.5 s stretch "
        "before taking a window, as short recordings come (default 0)",
    )
    p.add_argument(
        "--init",
        choices=["paper", "torch"],
        help="weights from the paper's U(-r, r) or PyTorch's default per layer (preset's choice)",
    )
    p.add_argument(
        "--trim-db",
        type=float,
        metavar="DB",
        help="leave out each clip's leading and trailing frames more than DB below its loudest "
        "(in training and in the model's inference: silence before or after does not count)",
    )
    p.add_argument(
        "--level-db",
        type=float,
        metavar="DBFS",
        help="scale each clip so its loudest frame sits at DBFS (training and inference: the "
        "clip's level does not count)",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument(
        "--validate-every", type=int, metavar="N", help="validate after every N-th epoch"
    )
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int, help="training seed (loso: also of the excerpts)")
    p.add_argument("--device")


def eot_options(p: argparse.ArgumentParser) -> None:
    """Expectation over transformation: the transforms and how many draws per iteration."""
    p.add_argument(
        "--eot",
        metavar="SPEC",
        help="optimise through fresh draws of these transforms each iteration, e.g. "
        "mp3@64k or room:small,noise@30dB (alternatives), room:small+mp3@64k (in turn); "
        "success is judged on fresh draws never used in optimisation (--param eot_draws=N, "
        "survival_rate=R)",
    )
    p.add_argument("--eot-samples", type=int, metavar="K", help="EoT draws per iteration")


def survival_draws(args: argparse.Namespace) -> int:
    """--survival-draws, refused without --survival (it would be ignored)."""
    from advstudio.core.evaluation.study import StudySpec

    if args.survival_draws is None:
        return StudySpec.survival_draws
    if not args.survival:
        raise ParameterError("--survival-draws needs --survival SPEC (the transforms to draw)")
    return args.survival_draws


def attack_params(args: argparse.Namespace) -> dict[str, str]:
    """The --param assignments, with --eot and --eot-samples among them."""
    from advstudio.core.attacks.params import parse_assignments

    params = parse_assignments(args.param)
    if args.eot is not None:
        params["eot"] = args.eot
    if args.eot_samples is not None:
        if not params.get("eot"):  # else the attack would run plain, the count ignored
            raise ParameterError("--eot-samples needs --eot SPEC (the transforms to draw)")
        params["eot_samples"] = str(args.eot_samples)
    return params


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # what a written result records of the command that made it
    try:
        configure_threads(getattr(args, "threads", None))
        return args.func(args)
    except AdvStudioError as exc:
        report_error(exc, as_json=bool(getattr(args, "json", False)))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("advstudio: interrupted", file=sys.stderr)
        return 130
