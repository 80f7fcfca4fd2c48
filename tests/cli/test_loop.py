"""runtime.loop: which event loop the ``superstep`` command runs on."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from runtime.loop import resolve_loop, run
from tests.cli.conftest import Cli


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_prefers_uvloop_and_each_choice_runs_on_its_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SUPERSTEP_LOOP", raising=False)
    assert resolve_loop() == "uvloop"  # installed with the test extra (uvicorn[standard])
    assert run(_loop_module()).startswith("uvloop")
    assert run(_loop_module(), loop="asyncio").startswith("asyncio")
    assert run(_loop_module(), loop="uvloop").startswith("uvloop")


def test_the_environment_chooses_and_bad_choices_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUPERSTEP_LOOP", "asyncio")
    assert run(_loop_module()).startswith("asyncio")
    monkeypatch.setenv("SUPERSTEP_LOOP", "trio")
    with pytest.raises(ValueError, match=r"SUPERSTEP_LOOP: unknown event loop 'trio'"):
        resolve_loop()
    coro = _loop_module()
    with pytest.raises(ValueError, match="unknown event loop"):
        run(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # no "never awaited" warning


def test_without_uvloop_auto_falls_back_and_asking_for_it_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SUPERSTEP_LOOP", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert resolve_loop() == "asyncio"
    with pytest.raises(ValueError, match=r"--loop: uvloop is not installed \(pip install uvloop\)"):
        resolve_loop("uvloop")


def test_the_command_takes_loop_and_refuses_a_missing_one_in_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for loop in ("asyncio", "uvloop"):
        r = cli("--loop", loop, "run", "tests.cli.flows:counter", "--input", "21", "--quiet")
        assert r.code == 0, r.err
        assert r.out.splitlines()[:2] == ["status: completed", "outputs: [42]"]
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    r = cli("--loop", "uvloop", "run", "tests.cli.flows:counter", "--input", "21")
    assert r.code == 2
    assert r.err == "superstep: error: --loop: uvloop is not installed (pip install uvloop)\n"
