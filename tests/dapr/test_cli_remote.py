"""``superstep run --url``: a run on the deployment from the command line, and a
human-in-the-loop run answered with the command the CLI prints."""

from __future__ import annotations

import io
import json
import shlex

from runtime.cli import main
from tests.dapr.conftest import API_TOKEN, Deployment


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_a_run_on_the_deployment_from_the_command_line(deployment: Deployment) -> None:
    code, out, err = _cli(
        "run", "tests.dapr.workflows:ping", "--input", "0", "--url", deployment.url,
        "--token", API_TOKEN, "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out.splitlines()[-1])
    assert result["result"] == "completed" and result["outputs"] == [11]


def test_a_paused_run_is_answered_with_the_printed_command(deployment: Deployment) -> None:
    code, out, err = _cli(
        "run", "tests.dapr.workflows:hitl", "--input", '"the plan"', "--url", deployment.url,
        "--token", API_TOKEN,
    )  # fmt: skip
    assert code == 0, err
    assert "status: awaiting_input" in out
    lines = out.splitlines()
    command = shlex.split(lines[lines.index("answer with:") + 1])
    assert command[:3] == ["superstep", "run", "tests.dapr.workflows:hitl"]
    (request_id,) = json.loads(command[command.index("--responses") + 1])
    run_id = command[command.index("--run") + 1]
    # the printed command, with the answer filled in and the token added
    command[command.index("--responses") + 1] = json.dumps({request_id: True})
    code, out, err = _cli(*command[1:], "--token", API_TOKEN)
    assert code == 0, err
    assert "status: completed" in out
    assert "approve the plan? -> yes" in out
    # answering it again is refused in one line
    code, out, err = _cli(*command[1:], "--token", API_TOKEN)
    assert code == 2
    assert f"run {run_id!r} has no pending requests (status completed)" in err


def test_the_remote_flags_need_a_url() -> None:
    code, _, err = _cli("run", "tests.dapr.workflows:hitl", "--run", "r1", "--responses", "{}")
    assert code == 2 and "--run names a run of a deployment: give --url too" in err
    code, _, err = _cli("run", "tests.dapr.workflows:hitl", "--input", "1", "--token", "t")
    assert code == 2 and "give --url too" in err
