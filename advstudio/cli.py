"""The `advstudio` command: the desktop application by default, subcommands for batch work.

Every user error ends as one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from advstudio import __version__
from advstudio.core.errors import AdvStudioError
from advstudio.core.progress import Event, ItemFinished, JobFinished, JobStarted, Message

EXIT_USER_ERROR = 2
EXIT_SOME_FAILED = 1


class ProgressBarReporter:
    """Shows job progress as a tqdm bar on stderr and log messages above it."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def report(self, event: Event) -> None:
        if isinstance(event, JobStarted):
            self.bar = tqdm(
                total=event.total, desc=event.job, unit="step", file=sys.stderr, dynamic_ncols=True
            )
        elif isinstance(event, ItemFinished) and self.bar is not None:
            self.bar.update(event.done - self.bar.n)
            if event.metrics:
                self.bar.set_postfix(
                    {k: f"{v:.4g}" for k, v in event.metrics.items() if isinstance(v, float)},
                    refresh=False,
                )
        elif isinstance(event, Message):
            tqdm.write(f"{event.job}: {event.text}", file=sys.stderr)
        elif isinstance(event, JobFinished) and self.bar is not None:
            self.bar.close()
            self.bar = None


def _cmd_gui(args: argparse.Namespace) -> int:
    from advstudio.gui.app import run_app

    return run_app(model_path=args.model)


def _cmd_classify(args: argparse.Namespace) -> int:
    from advstudio.core.inference import FileError, classify_files
    from advstudio.core.models import load_model

    model = load_model(args.model, labels=args.labels, device=args.device)
    results = classify_files(model, args.files)
    failed = [r for r in results if isinstance(r, FileError)]
    for r in failed:
        print(f"advstudio: {r.message}", file=sys.stderr)
    ok = [r for r in results if not isinstance(r, FileError)]
    if args.json:
        rows = [
            {"file": str(r.path), "label": r.label, "probabilities": r.probabilities} for r in ok
        ]
        print(json.dumps(rows, indent=2))
    else:
        for r in ok:
            top = "  ".join(f"{label} {p:.3f}" for label, p in r.top(3))
            print(f"{r.path}\t{top}")
    return EXIT_SOME_FAILED if failed else 0


def _cmd_train(args: argparse.Namespace) -> int:
    from advstudio.core.data.datasets import open_dataset
    from advstudio.core.training import config_from_preset, train, write_model_card

    dataset = open_dataset(args.data, args.layout)
    config = config_from_preset(
        args.preset,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
    )
    card = train(dataset, Path(args.out), config, ProgressBarReporter(), resume=args.resume)
    write_model_card(Path(args.out), card, dataset.description)
    print(f"validation accuracy {card['validation']['accuracy']:.3f}; model written to {args.out}")
    return 0


def _cmd_render_demo(args: argparse.Namespace) -> int:
    from advstudio.core.data.render import render_demo_set

    metadata = render_demo_set(
        Path(args.out),
        args.per_class,
        args.seed,
        validation_font=args.validation_font,
        reporter=ProgressBarReporter(),
    )
    print(f"demo set written: {metadata}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="advstudio",
        description="Adversarial robustness analysis of audio classifiers. "
        "Without a subcommand, opens the desktop application.",
    )
    parser.add_argument("--version", action="version", version=f"advstudio {__version__}")
    parser.set_defaults(func=_cmd_gui, model=None)
    sub = parser.add_subparsers(title="subcommands", metavar="COMMAND")

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            help="model directory, checkpoint or TorchScript file "
            "(default: the shipped instrument model)",
        )
        p.add_argument("--labels", help="labels file for a TorchScript model")
        p.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when present)")

    p = sub.add_parser("gui", help="open the desktop application")
    p.add_argument("--model", help="model to open instead of the shipped one")
    p.set_defaults(func=_cmd_gui)

    p = sub.add_parser("classify", help="top-3 classes with probabilities for each file")
    p.add_argument("files", nargs="+", metavar="FILE")
    model_options(p)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("train", help="train the paper-002 CNN on a dataset")
    p.add_argument("data", help="dataset folder, CSV (path,label[,split]) or FSDKaggle2019 root")
    p.add_argument("--out", required=True, help="model directory to write (holds checkpoints)")
    p.add_argument(
        "--layout",
        choices=["folder", "csv", "fsdkaggle2019"],
        help="dataset layout (default: guessed)",
    )
    p.add_argument("--preset", default="paper", help="paper (default) or demo")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.set_defaults(func=_cmd_train)

    data = sub.add_parser("data", help="datasets: render the offline demo set")
    data_sub = data.add_subparsers(title="data commands", metavar="COMMAND", required=True)
    p = data_sub.add_parser(
        "render-demo", help="render the 12-class instrument set from SoundFonts"
    )
    p.add_argument("out", help="folder to write (must not hold a rendered set already)")
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--validation-font",
        default="sf_GMbank",
        help="SoundFont held out of training for validation",
    )
    p.set_defaults(func=_cmd_render_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AdvStudioError as exc:
        print(f"advstudio: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("advstudio: interrupted", file=sys.stderr)
        return 130
