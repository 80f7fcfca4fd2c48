"""What the commands share: the CLI's error, loading ``module:attr``, JSON in and out."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from pydantic_core import to_jsonable_python

from runtime.engine._types import type_name
from runtime.errors import CodecError, SuperstepError, WorkflowValidationError
from runtime.workflow import Workflow, input_from_json

__all__ = [
    "EXIT_OK",
    "EXIT_RUN_FAILED",
    "EXIT_USAGE",
    "CliError",
    "Parser",
    "SubParsers",
    "dumps",
    "format_table",
    "load_workflow",
    "non_negative_float",
    "non_negative_int",
    "one_line",
    "parse_json",
    "positive_int",
    "to_input",
]

EXIT_OK = 0
EXIT_RUN_FAILED = 1
"""The workflow ran and ended failed, stalled or cancelled."""
EXIT_USAGE = 2
"""Bad arguments: unknown module, bad JSON, missing checkpoint, invalid graph..."""


class Parser(argparse.ArgumentParser):
    """Reports bad arguments as one ``CliError`` line instead of usage + exit.

    An unknown option among the arguments this parser reads before its first positional
    one (the command, for ``superstep`` itself) is reported first: argparse would
    otherwise complain about what a subcommand misses (``superstep --bogus run``: "the
    following arguments are required: module:attr"). Unknown options after that are
    argparse's own "unrecognized arguments" error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._takes_value: dict[str, bool] = {}  # filled by add_argument, -h included
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        for option in action.option_strings:
            self._takes_value[option] = action.nargs != 0
        return action

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        tokens = list(sys.argv[1:] if args is None else args)
        unknown = self._leading_unknown_options(tokens)
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return super().parse_known_args(tokens, namespace)

    def _leading_unknown_options(self, tokens: Sequence[str]) -> list[str]:
        unknown: list[str] = []
        skip_value = False
        for token in tokens:
            if skip_value:
                skip_value = False
                continue
            if token == "--" or not _looks_like_option(token):
                break  # the first positional argument (or the end of the options)
            name = token.split("=", 1)[0]
            known = self._match(name)
            if known is None:
                unknown.append(token)
            elif "=" not in token and self._takes_value[known]:
                skip_value = True
        return unknown

    def _match(self, name: str) -> str | None:
        """The option ``name`` stands for: itself, a short option's first letter (``-qv``)
        or, as argparse allows, the only long option it abbreviates."""
        if name in self._takes_value:
            return name
        if not name.startswith("--"):
            short = name[:2]
            return short if short in self._takes_value else None
        matches = [o for o in self._takes_value if o.startswith(name)]
        return matches[0] if len(matches) == 1 else None

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')")


_NEGATIVE_NUMBER = re.compile(r"-\d+|-\d*\.\d+")


def _looks_like_option(token: str) -> bool:
    """Whether argparse reads ``token`` as an option rather than a positional value (our
    parsers have no option that looks like a negative number)."""
    return (
        token.startswith("-")
        and token != "-"
        and " " not in token
        and _NEGATIVE_NUMBER.fullmatch(token) is None
    )


if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[Parser]


class CliError(Exception):
    """A problem with what the user asked for; reported as one line, no traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(exc: BaseException) -> str:
    """An exception's message folded onto one line."""
    if isinstance(exc, WorkflowValidationError) and exc.problems:
        text = "; ".join(exc.problems)
        if len(exc.problems) > 1:
            text = f"{len(exc.problems)} problems: {text}"
        return f"invalid workflow: {text}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


def dumps(value: Any) -> str:
    """Compact JSON of any value handlers exchange (dataclasses, models, enums...)."""
    return json.dumps(to_jsonable_python(value, fallback=repr), ensure_ascii=False)


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = ()
) -> list[str]:
    """Plain-text columns: padded to the widest cell, ``right`` columns right-aligned."""
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    return [
        "  ".join(
            v.rjust(widths[c]) if c in right else v.ljust(widths[c]) for c, v in enumerate(r)
        ).rstrip()
        for r in [header, *rows]
    ]


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if text.strip() and text.strip()[0] not in '{["':
            hint = f"; a JSON string needs quotes: {what} '{json.dumps(text.strip())}'"
        raise CliError(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno}){hint}"
        ) from None


def import_module(module_name: str) -> ModuleType:
    """Import ``module_name`` (the current directory is importable, as with ``python
    -m``); a ``CliError`` saying why it cannot be."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise CliError(
                f"cannot import module {module_name!r}: no module named {exc.name!r}"
            ) from None
        raise CliError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    except SuperstepError as exc:
        raise CliError(f"importing {module_name!r} failed: {one_line(exc)}") from exc
    except Exception as exc:
        raise CliError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {one_line(exc)}"
        ) from exc


def load_workflow(spec: str) -> Workflow:
    """Import ``module:attr`` (``attr`` may be dotted); a zero-argument callable is called.

    The current directory is importable, as with ``python -m``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"expected module:attribute (e.g. myflows:workflow), got {spec!r}")
    obj: Any = import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, Workflow):
        return obj
    if not callable(obj):
        raise CliError(
            f"{spec} is not a Workflow or a function returning one (it is {type(obj).__name__})"
        )
    try:
        made = obj()
    except SuperstepError as exc:
        raise CliError(one_line(exc)) from exc
    except Exception as exc:
        raise CliError(f"calling {spec}() failed: {type(exc).__name__}: {one_line(exc)}") from exc
    if not isinstance(made, Workflow):
        raise CliError(f"{spec}() returned {type(made).__name__}, not a Workflow")
    return made


def to_input(workflow: Workflow, raw: Any) -> Any:
    """Turn parsed JSON into a value the start executor accepts (``input_from_json``:
    the codec's tagged form, the JSON value itself, or a JSON object as the start
    executor's dataclass or pydantic model)."""
    try:
        return input_from_json(workflow, raw, what="--input")
    except CodecError as exc:
        raise CliError(one_line(exc)) from exc


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text}")
    return value


_N = TypeVar("_N", int, float)


def _number(text: str, kind: type[_N]) -> _N:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _names(types: Sequence[Any]) -> str:
    return ", ".join(type_name(t) for t in types) or "nothing"
