"""Helpers for calling the command line in-process."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from runtime.cli import main


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


Cli = Callable[..., Outcome]


@pytest.fixture
def cli() -> Cli:
    """``cli("run", "mod:attr", ...)`` runs ``main`` in-process and captures its output."""

    def call(*argv: str) -> Outcome:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), stdout=out, stderr=err)
        return Outcome(code, out.getvalue(), err.getvalue())

    return call
