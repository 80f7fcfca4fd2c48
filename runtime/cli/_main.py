"""The ``superstep`` command: argument parsing, dispatch, and one-line errors."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TextIO

from runtime import __version__
from runtime.cli._commands import add_checkpoints_parser, add_graph_parser, add_run_parser
from runtime.cli._common import EXIT_USAGE, CliError, Parser, one_line
from runtime.cli._console import add_console_parser
from runtime.cli._demo import add_demo_parser
from runtime.errors import SuperstepError
from runtime.loop import LOOPS, resolve_loop
from runtime.loop import run as run_on_loop

__all__ = ["build_parser", "main"]

PROG = "superstep"
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + getattr(signal, "SIGPIPE", 13)
"""What a shell reports for a Unix tool that SIGPIPE ended (``superstep run | head -1``)."""

Handler = Callable[[argparse.Namespace, TextIO, TextIO], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description=(
            "Agent workflows in bulk-synchronous supersteps. Run the demo, run a workflow, "
            "draw its graph, inspect checkpoints, open the run console."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--traceback", action="store_true", help="show tracebacks instead of one-line errors"
    )
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default=None,
        help="event loop: uvloop when installed (auto, the default; or $SUPERSTEP_LOOP), "
        "or asyncio's",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )
    add_demo_parser(sub)
    add_run_parser(sub)
    add_graph_parser(sub)
    add_checkpoints_parser(sub)
    add_console_parser(sub)
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the command line; returns the exit status (0 ok, 1 the run failed, 2 bad usage)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    args_list = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args_list
    try:
        args = build_parser().parse_args(args_list)
        handler: Handler = args.handler
        try:
            kind = resolve_loop(args.loop)
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        return run_on_loop(handler(args, out, err), loop=kind)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as Unix tools do
        _quiet_broken_pipes(out, err)
        return EXIT_BROKEN_PIPE
    except CliError as exc:
        if show_traceback:
            raise
        err.write(f"{PROG}: error: {one_line(exc)}\n")
        return exc.exit_code
    except SuperstepError as exc:
        if show_traceback:
            raise
        err.write(f"{PROG}: error: {type(exc).__name__}: {one_line(exc)}\n")
        return EXIT_USAGE


def _quiet_broken_pipes(*streams: TextIO) -> None:
    """Point each stream that still holds output for a closed pipe at the null device,
    so that the interpreter does not flush it there at exit (which prints "Exception
    ignored ... BrokenPipeError")."""
    for stream in streams:
        if not _pipe_closed(stream):
            continue
        try:
            fd = stream.fileno()
        except (OSError, ValueError):
            continue  # not a file descriptor's stream: nothing of it is flushed at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def _pipe_closed(stream: TextIO) -> bool:
    try:
        stream.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):  # closed, or another error: not ours to hide
        return False
    return False
