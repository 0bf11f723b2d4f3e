"""`advstudio defend evaluate`: a defense's clean accuracy and its accuracy under the plain
attack (which ignores it) and the adaptive attack (which attacks it), per attack."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from advstudio.cli_tasks import add_task_store_option, task_model_device, task_store
from advstudio.core.errors import ParameterError


def _cmd_defend_evaluate(args: argparse.Namespace) -> int:
    from advstudio.cli import (
        EXIT_SOME_FAILED,
        check_counts,
        check_outputs_free,
        open_data,
        select_examples,
    )
    from advstudio.cli_output import ProgressBarReporter
    from advstudio.core.attacks import make_attack
    from advstudio.core.attacks.params import parse_assignments
    from advstudio.core.defenses.evaluation import (
        RANDOM_EOT_SAMPLES,
        DefenseSource,
        evaluate_defenses,
        open_defense,
    )
    from advstudio.core.evaluation.cluster import make_executor
    from advstudio.core.evaluation.model_source import ModelSource
    from advstudio.core.models import load_model
    from advstudio.core.progress import Message
    from advstudio.core.reports.defenses import format_defense_table, write_defense_report
    from advstudio.core.reports.provenance import model_name
    from advstudio.core.reports.study import write_study_json

    outputs = check_outputs_free(args)
    check_counts(args)
    if args.eot_samples is not None and not 1 <= args.eot_samples <= 64:
        raise ParameterError(f"--eot-samples must be 1 to 64, got {args.eot_samples}")
    attacks = attack_settings(args.attack, parse_assignments(args.param))
    for name, params in attacks:
        make_attack(name, **params)  # bad names and parameters: one line before any work
    executor = make_executor(args.executor, args.resources)
    base = load_model(args.model, labels=args.labels, device=args.device)
    device = task_model_device(args)
    base_source = ModelSource.of(base, args.model, args.labels, device)
    defenses = []
    for text in args.defense:
        defense = open_defense(text, base, args.device)
        defenses.append((defense, DefenseSource.of(defense, text, base_source)))
    dataset = open_data(args.data, args)
    selection = select_examples(dataset, args.split, base.labels)
    examples = spread(selection.examples, args.limit)
    if selection.note:
        print(f"advstudio: {selection.note}", file=sys.stderr)
    reporter = ProgressBarReporter()
    if hasattr(executor, "describe"):
        reporter.report(Message("defend", executor.describe()))
    with task_store(args.db) as store:
        study = evaluate_defenses(
            defenses,
            attacks,
            examples,
            store,
            executor,
            reporter,
            seed=args.seed,
            batch_size=args.batch_size,
            eot_samples=args.eot_samples or RANDOM_EOT_SAMPLES,
        )
    evaluations = [e | {"model": model_name(args.model)} for e in study.evaluations]
    if evaluations:
        print(format_defense_table(evaluations))
    for failure in study.failed:
        print(f"advstudio: failed: {failure}", file=sys.stderr)
    if outputs["json_path"] is not None:
        failed = {"failed": study.failed} if study.failed else {}
        write_study_json({"defenses": evaluations} | failed, outputs["json_path"])
    if outputs["report_dir"] is not None and evaluations:
        config = {"data": args.data, "model": model_name(args.model), "device": str(base.device)}
        written = write_defense_report(outputs["report_dir"], evaluations, config, args.overwrite)
        print(f"report written: {written}")
    return EXIT_SOME_FAILED if study.failed else 0


def attack_settings(
    names: Sequence[str], assignments: dict[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """Each attack with the --param assignments it knows; an assignment no attack knows is
    refused (it would be ignored)."""
    from advstudio.core.attacks import ATTACKS, make_attack

    settings, used = [], set()
    for name in names:
        if name not in ATTACKS:
            make_attack(name)  # one line naming the known attacks
        cls = ATTACKS[name]
        known = {p.name for p in cls.params_schema + cls.common_params}
        settings.append((name, {k: v for k, v in assignments.items() if k in known}))
        used |= known & set(assignments)
    unknown = sorted(set(assignments) - used)
    if unknown:
        raise ParameterError(f"--param {unknown[0]}: no attack given takes it")
    return settings


def spread(examples: list, limit: int | None) -> list:
    """At most `limit` files, taken evenly across the list (which is ordered by
    class), so a small subset still covers the classes."""
    if limit is None or limit >= len(examples):
        return examples
    step = len(examples) / limit
    return [examples[int(k * step)] for k in range(limit)]


def add_defend_commands(
    sub: argparse._SubParsersAction,
    dataset_options: Callable[[argparse.ArgumentParser], None],
    model_options: Callable[[argparse.ArgumentParser], None],
    executor_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    defend = sub.add_parser("defend", help="defenses judged by adaptive attacks")
    defend_sub = defend.add_subparsers(title="defend commands", metavar="COMMAND", required=True)
    p = defend_sub.add_parser(
        "evaluate",
        help="clean accuracy of a defended model, and its accuracy under the plain attack "
        "(made on the undefended model) and the adaptive attack (made on the whole defense)",
    )
    p.add_argument("data", help="dataset folder, CSV or GTZAN root (labelled files)")
    p.add_argument(
        "--defense",
        action="append",
        required=True,
        metavar="SPEC",
        help="(repeatable) input transforms in front of the model, e.g. mp3@64k, opus@24k, "
        "resample@8k, lowpass@4k, quantise@8bit, noise@30dB, median@5, or alternatives drawn "
        "at random "
        "(median@5,noise@30dB); or a model directory (a saved defense, a distilled or "
        "adversarially trained model)",
    )
    p.add_argument(
        "--attack", action="append", required=True, metavar="NAME", help="attack (repeatable)"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="attack parameter, for every attack that takes it",
    )
    p.add_argument(
        "--eot-samples",
        type=int,
        metavar="K",
        help="adaptive attack on a random defense: draws per iteration (default 8)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="at most N files, spread over classes")
    p.add_argument("--split", help="dataset split (default as evaluate; all for every file)")
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", help="write the results as JSON")
    p.add_argument("--report", help="folder for an HTML report")
    p.add_argument("--overwrite", action="store_true")
    add_task_store_option(p)
    executor_options(p)
    dataset_options(p)
    model_options(p)
    p.set_defaults(func=_cmd_defend_evaluate)
