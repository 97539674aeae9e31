"""What every command-line tool shares: one error path (bad input becomes one ``error: ...`` line and exit
status 2) and the option groups defined once for every tool that takes them (as Pyserini's
``define_dsearch_args`` is reused). Options are spelled with dashes everywhere (``--batch-size``,
``--train-data``); ``python -m qpr_pyserini.train`` accepts the same dashed spellings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from qpr_pyserini.config import BACKENDS
from qpr_pyserini.io.errors import InputError


def one_line(exc: BaseException) -> str:
    """An exception as one line (file errors name the file)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def run_cli(action: Callable[[], str | None]) -> int:
    """Run a CLI's work; print its message and return 0, or report bad input on one line and return 2.

    ``InputError`` (the file or setting at fault, and the line) and ``OSError`` (missing or unreadable files)
    are the user's to fix: no traceback. Anything else, ``ValueError`` included, is a bug and keeps its
    traceback.
    """
    try:
        message = action()
    except (InputError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    if message:
        print(message)
    return 0


def add_encoder_options(
    parser: argparse.ArgumentParser, *, encoder_help: str, batch_help: str, batch_size: int = 32
) -> None:
    """``--encoder``, ``--batch-size``, ``--device``, ``--backend``: which encoder runs, how many texts a
    pass, where, and which library runs it."""
    group = parser.add_argument_group("encoder")
    group.add_argument("--encoder", help=encoder_help)
    group.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        help=f"{batch_help} per forward pass (default {batch_size})",
    )
    group.add_argument(
        "--device", default="cpu", help="torch device: cpu, cuda, cuda:N, mps or auto (default cpu)"
    )
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="inference library (default torch); onnx, openvino (CPU, fp32, exported once and cached), "
        "openvino-bf16 and onnx-int8 (opt-in lower precisions) need the extras qpr_pyserini[onnx] / [openvino]",
    )


def add_output_options(parser: argparse.ArgumentParser, *, overwrite: str | None = None) -> None:
    """``--quiet`` (no progress bar) and, where the output is a folder, ``--overwrite``."""
    group = parser.add_argument_group("output")
    if overwrite is not None:
        group.add_argument("--overwrite", action="store_true", help=overwrite)
    group.add_argument("--quiet", action="store_true", help="no progress bar")
