"""``superstep console``: what it refuses before it serves (serving is tested in
tests/console/test_inprocess.py and tests/unit/test_console_app.py)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli


def test_it_wants_a_workflow_or_a_folder(cli: Cli) -> None:
    done = cli("console")
    assert done.code == 2
    assert "give --workflow module:attr" in done.err


def test_a_missing_folder_is_refused_unless_created(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    done = cli("console", "--checkpoint-dir", str(missing))
    assert done.code == 2 and "no checkpoint directory" in done.err
    assert "--create makes it" in done.err


def test_a_workflow_that_does_not_load_is_refused(cli: Cli) -> None:
    done = cli("console", "--workflow", "tests.cli.flows:NOT_A_WORKFLOW")
    assert done.code == 2 and "is not a Workflow" in done.err


def test_two_workflows_of_one_name_are_refused(cli: Cli) -> None:
    done = cli(
        "console",
        "--workflow",
        "tests.cli.flows:greeting",
        "--workflow",
        "tests.cli.flows:greeting",
    )
    assert done.code == 2 and "two workflows are named" in done.err


def test_a_module_of_factories_that_does_not_import_is_refused(cli: Cli) -> None:
    done = cli("console", "--workflow", "tests.cli.no_such_module:*")
    assert done.code == 2
    assert "cannot import module 'tests.cli.no_such_module'" in done.err
