"""``superstep run``, ``graph`` and ``checkpoints list``: outputs, errors and exit codes."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.engine import EMPTY_TRACE_HASH
from tests.cli.conftest import Cli

FLOWS = "tests.cli.flows"


# -- run ------------------------------------------------------------------------------
def test_run_prints_events_and_result(cli: Cli) -> None:
    r = cli("run", f"{FLOWS}:workflow", "--input", '{"name": "ada", "times": 2}')
    assert r.code == 0, r.err
    assert re.search(r"^\s+2 output\s+shout \"HELLO ADA HELLO ADA\"$", r.out, re.M)
    assert re.search(r"^\s+1 superstep_started", r.out, re.M)
    assert "status: completed\n" in r.out
    assert 'outputs: ["HELLO ADA HELLO ADA"]\n' in r.out
    assert "pending requests: none\n" in r.out
    assert re.search(r"^trace hash: [0-9a-f]{32}$", r.out, re.M)
    assert r.err == ""


def test_run_calls_a_factory_and_takes_plain_json(cli: Cli) -> None:
    r = cli("run", f"{FLOWS}:counter", "--input", "21", "--quiet")
    assert r.code == 0, r.err
    assert r.out.splitlines()[:2] == ["status: completed", "outputs: [42]"]


def test_run_json_lines(cli: Cli) -> None:
    r = cli("run", f"{FLOWS}:counter", "--input", "5", "--json")
    assert r.code == 0, r.err
    records = [json.loads(line) for line in r.out.splitlines()]
    assert records[0]["event"] == "started"
    assert any(e.get("event") == "output" and e["data"] == 10 for e in records[:-1])
    final = records[-1]
    assert final["result"] == "completed"
    assert final["outputs"] == [10]
    assert re.fullmatch(r"[0-9a-f]{32}", final["trace_hash"])


def test_run_demo_workflow_with_a_dataclass_input(cli: Cli) -> None:
    r = cli("run", "runtime.demo:build_workflow", "--input", '{"docs": 30, "seed": 2}', "-q")
    assert r.code == 0, r.err
    outputs = json.loads(r.out.splitlines()[1].removeprefix("outputs: "))
    assert outputs[0]["documents"] == 30


def test_run_that_fails_exits_1(cli: Cli) -> None:
    r = cli("run", f"{FLOWS}:failing", "--input", "3")
    assert r.code == 1
    assert "status: failed\n" in r.out
    assert (
        "error: ExecutorFailedError: executor 'boom' failed in superstep 1 after 1 attempt(s): "
        "RuntimeError: boom on 3\n  (--traceback shows the handler's traceback)\n"
    ) in r.out
    assert "Traceback" not in r.out + r.err


def test_a_failure_names_the_handler_s_exception_and_each_failed_attempt(cli: Cli) -> None:
    r = cli("run", f"{FLOWS}:charging", "--input", "30")
    assert r.code == 1
    declined = f"{FLOWS}.Declined"
    assert r.out.endswith(
        f"error: ExecutorFailedError: executor 'charge' failed in superstep 1 after 2 "
        f"attempt(s): {declined}: 30 declined (attempt 2)\n"
        f"  attempt 1: {declined}: 30 declined (attempt 1)\n"
        f"  attempt 2: {declined}: 30 declined (attempt 2)\n"
        "  (--traceback shows the handler's traceback)\n"
    )
    assert "Traceback" not in r.out + r.err


def test_run_traceback_prints_the_handler_s_traceback(cli: Cli) -> None:
    r = cli("run", f"{FLOWS}:charging", "--input", "30", "--traceback", "-q")
    assert r.code == 1
    _, _, shown = r.out.partition("  attempt 2: ")
    lines = shown.splitlines()[1:]
    assert lines[0] == "    Traceback (most recent call last):"
    assert lines[1].startswith('      File "') and "flows.py" in lines[1]
    assert lines[2] == '        raise Declined(f"{amount} declined (attempt {self.attempts})")'
    assert lines[-1] == f"    {FLOWS}.Declined: 30 declined (attempt 2)"


def test_run_json_gives_the_error_as_text_and_as_a_record(cli: Cli) -> None:
    r = cli("run", f"{FLOWS}:charging", "--input", "30", "--json")
    *events, final = [json.loads(line) for line in r.out.splitlines()]
    info = final["error_info"]
    assert final["error"] == info["message"]
    assert (info["type"], info["executor_id"], info["superstep"]) == (
        "ExecutorFailedError",
        "charge",
        1,
    )
    cause = info["cause"]
    assert (cause["type"], cause["module"], cause["message"]) == (
        "Declined",
        FLOWS,
        "30 declined (attempt 2)",
    )
    assert [a["message"] for a in cause["attempts"]] == [
        "30 declined (attempt 1)",
        "30 declined (attempt 2)",
    ]
    assert cause["traceback"].endswith(f"{FLOWS}.Declined: 30 declined (attempt 2)\n")
    (failed,) = [e for e in events if e["event"] == "executor_failed"]
    assert failed["details"]["traceback"] == cause["traceback"]
    assert failed["details"]["failures"] == cause["attempts"]


def test_a_run_failing_in_superstep_1_reports_superstep_1_throughout(cli: Cli) -> None:
    r = cli("run", f"{FLOWS}:failing", "--input", "3", "--json")
    assert r.code == 1
    *events, final = [json.loads(line) for line in r.out.splitlines()]
    steps = {e["event"]: e["superstep"] for e in events if e["event"] != "started"}
    assert steps == {
        "superstep_started": 1,
        "executor_failed": 1,
        "failed": 1,
        "status": 1,
    }
    assert final["supersteps"] == 1
    assert final["trace_hash"] == EMPTY_TRACE_HASH  # the hash of the empty trace, not ""


def test_human_in_the_loop_across_invocations(cli: Cli, tmp_path: Path) -> None:
    d = str(tmp_path / "cps")
    first = cli(
        "run", f"{FLOWS}:approval", "--input", "250", "--checkpoint-dir", d, "--create", "--json"
    )  # fmt: skip
    assert first.code == 0, first.err
    paused = json.loads(first.out.splitlines()[-1])
    assert paused["result"] == "awaiting_input"
    (req,) = paused["pending_requests"]
    assert req["response_type"] == "bool" and req["data"] == {"amount": 250}

    listing = cli("checkpoints", "list", d)
    assert listing.code == 0, listing.err
    header, row = listing.out.splitlines()
    assert header.split() == ["id", "run", "superstep", "status", "pending", "created"]
    assert row.split()[:5] == [
        paused["last_checkpoint_id"],
        paused["run_id"],
        "1",
        "awaiting_input",
        "1",
    ]

    resumed = cli(
        "run", f"{FLOWS}:approval", "--checkpoint-dir", d,
        "--resume", paused["last_checkpoint_id"],
        "--responses", json.dumps({req["request_id"]: True}),
    )  # fmt: skip
    assert resumed.code == 0, resumed.err
    assert 'outputs: ["250: approved"]\n' in resumed.out
    assert "status: completed\n" in resumed.out

    listing = cli("checkpoints", "list", d, "--run", paused["run_id"])
    assert [ln.split()[3] for ln in listing.out.splitlines()[1:]] == [
        "awaiting_input",
        "completed",
    ]


def test_a_paused_run_prints_the_command_that_answers_it(cli: Cli, tmp_path: Path) -> None:
    d = str(tmp_path / "cps")
    first = cli("run", f"{FLOWS}:approval", "--input", "250", "--checkpoint-dir", d, "--create")
    assert first.code == 0, first.err
    lines = first.out.splitlines()
    command = shlex.split(lines[lines.index("answer with:") + 1])
    assert command[:5] == ["superstep", "run", f"{FLOWS}:approval", "--checkpoint-dir", d]
    (request_id,) = json.loads(command[command.index("--responses") + 1])
    command[command.index("--responses") + 1] = json.dumps({request_id: True})
    answered = cli(*command[1:])
    assert answered.code == 0, answered.err
    assert 'outputs: ["250: approved"]\n' in answered.out
    # without checkpoints no command can continue the run: none is printed
    alone = cli("run", f"{FLOWS}:approval", "--input", "250")
    assert "awaiting_input" in alone.out and "answer with:" not in alone.out


def test_a_dataclass_response_is_plain_json_checked_as_over_http(cli: Cli, tmp_path: Path) -> None:
    """--responses takes a dataclass response as plain JSON and checks it as
    POST /runs/{id}/responses does: a field of the wrong type is one line naming it."""
    d = str(tmp_path)
    first = cli(
        "run", f"{FLOWS}:review", "--input", "90", "--checkpoint-dir", d, "--create", "--json"
    )
    assert first.code == 0, first.err
    paused = json.loads(first.out.splitlines()[-1])
    (req,) = paused["pending_requests"]
    resume = ("run", f"{FLOWS}:review", "--checkpoint-dir", d, "--resume", "latest")
    bad = cli(*resume, "--responses", json.dumps({req["request_id"]: {"approved": "maybe"}}))
    assert bad.code == 2
    assert len(bad.err.strip().splitlines()) == 1 and "approved" in bad.err, bad.err
    good = cli(
        *resume,
        "--responses", json.dumps({req["request_id"]: {"approved": True, "note": "ok"}}),
    )  # fmt: skip
    assert good.code == 0, good.err
    assert 'outputs: ["90: approved (ok)"]\n' in good.out


def test_resume_latest(cli: Cli, tmp_path: Path) -> None:
    d = str(tmp_path)
    cli("run", "runtime.demo:build_workflow", "--input", '{"docs": 8}', "-q",
        "--checkpoint-dir", d)  # fmt: skip
    r = cli("run", "runtime.demo:build_workflow", "--checkpoint-dir", d, "--resume", "latest")
    assert r.code == 0, r.err
    assert "status: completed" in r.out


# -- graph ------------------------------------------------------------------------------
def test_graph_mermaid_and_dot(cli: Cli) -> None:
    m = cli("graph", f"{FLOWS}:workflow")
    assert m.code == 0
    assert m.out.startswith("flowchart TD\n") and "n_greeter --> n_shout" in m.out
    d = cli("graph", f"{FLOWS}:greeting", "--format", "dot")
    assert d.code == 0
    assert d.out.startswith('digraph "workflow:greeter" {') and '"greeter" -> "shout";' in d.out


# -- errors: one line, exit 2, no traceback ---------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("run", "no_such_module:wf", "--input", "1"), "cannot import module 'no_such_module'"),
        (("run", "tests.cli.flows", "--input", "1"), "expected module:attribute"),
        (("run", f"{FLOWS}:missing", "--input", "1"), "has no attribute 'missing'"),
        (("run", f"{FLOWS}:NOT_A_WORKFLOW", "--input", "1"), "not a Workflow"),
        (("run", f"{FLOWS}:needs_arguments", "--input", "1"), "missing 1 required positional"),
        (("run", f"{FLOWS}:invalid", "--input", "1"), "invalid workflow: duplicate executor id"),
        (("graph", f"{FLOWS}:invalid"), "invalid workflow: duplicate executor id 'same'"),
        (("run", f"{FLOWS}:counter", "--input", "{nope"), "--input is not valid JSON"),
        (("run", f"{FLOWS}:counter", "--input", "hi"), """needs quotes: --input '"hi"'"""),
        (("run", f"{FLOWS}:counter", "--input", '"text"'), "does not fit the start executor"),
        (("run", f"{FLOWS}:workflow", "--input", '{"nam": 1}'), "name: Field required"),
        (("run", f"{FLOWS}:counter"), "give --input JSON"),
        (("run", f"{FLOWS}:counter", "--resume", "x"), "--resume needs --checkpoint-dir"),
        (("run", f"{FLOWS}:counter", "--input", "1", "--responses", "{}"), "--responses"),
        (("graph", f"{FLOWS}:workflow", "--format", "png"), "invalid choice: 'png'"),
        (("checkpoints", "list", "/no/such/dir"), "no checkpoint directory '/no/such/dir'"),
        (("--bogus", "run"), "unrecognized arguments: --bogus (see 'superstep --help')"),
        (("--loop", "asyncio", "--bogus=1", "run"), "unrecognized arguments: --bogus=1"),
        (("run", "--bogus"), "unrecognized arguments: --bogus (see 'superstep run --help')"),
        (("checkpoints", "list", "-x"), "unrecognized arguments: -x"),
        (("run", f"{FLOWS}:counter", "--input", "1", "--create"), "give --checkpoint-dir"),
        (("checkpoints",), "required"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
        ((), "the following arguments are required: COMMAND"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    cli: Cli, argv: tuple[str, ...], message: str
) -> None:
    r = cli(*argv)
    assert r.code == 2
    assert r.out == ""
    assert r.err.startswith("superstep: error: ") and r.err.count("\n") == 1, r.err
    assert message in r.err
    assert "Traceback" not in r.err


def test_missing_and_corrupt_checkpoints(cli: Cli, tmp_path: Path) -> None:
    r = cli("run", f"{FLOWS}:approval", "--checkpoint-dir", str(tmp_path), "--resume", "abc@1")
    assert r.code == 2 and "no checkpoint 'abc@1'" in r.err and r.err.count("\n") == 1
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    r = cli("checkpoints", "list", str(tmp_path))
    assert r.code == 2 and "not valid JSON" in r.err and r.err.count("\n") == 1
    r = cli("run", f"{FLOWS}:approval", "--checkpoint-dir", str(tmp_path), "--resume", "bad@1")
    assert r.code == 2 and "no checkpoint 'bad@1'" in r.err and r.err.count("\n") == 1


def test_checkpoint_of_another_graph_is_refused(cli: Cli, tmp_path: Path) -> None:
    d = str(tmp_path)
    cli("run", f"{FLOWS}:counter", "--input", "1", "--checkpoint-dir", d, "-q")
    listing = cli("checkpoints", "list", d)
    cp_id = listing.out.splitlines()[1].split()[0]
    r = cli("run", f"{FLOWS}:approval", "--checkpoint-dir", d, "--resume", cp_id)
    assert r.code == 2
    assert "belongs to a different graph" in r.err and r.err.count("\n") == 1


def test_a_missing_checkpoint_directory_is_made_only_with_create(cli: Cli, tmp_path: Path) -> None:
    d = tmp_path / "new" / "cps"
    r = cli("run", f"{FLOWS}:counter", "--input", "1", "--checkpoint-dir", str(d), "-q")
    assert (r.code, r.out) == (2, "")
    assert r.err == f"superstep: error: no checkpoint directory '{d}' (--create makes it)\n"
    assert not d.parent.exists()

    r = cli("run", f"{FLOWS}:counter", "--input", "1", "--checkpoint-dir", str(d), "--create")
    assert r.code == 0, r.err
    assert len(list(d.glob("*.jsonl"))) == 1
    again = cli("run", f"{FLOWS}:counter", "--input", "2", "--checkpoint-dir", str(d), "--create")
    assert again.code == 0, again.err  # an existing directory is fine with --create too


def test_resuming_from_a_missing_checkpoint_directory_says_so(cli: Cli, tmp_path: Path) -> None:
    d = tmp_path / "none"
    for extra in ((), ("--create",)):
        r = cli(
            "run", f"{FLOWS}:approval", "--checkpoint-dir", str(d), "--resume", "latest", *extra
        )
        assert r.code == 2
        assert r.err == f"superstep: error: no checkpoint directory '{d}'\n"
    assert not d.exists()


def test_a_file_given_as_checkpoint_directory_is_one_line(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "cps"
    f.write_text("not a directory\n")
    for argv in (
        ("run", f"{FLOWS}:counter", "--input", "1", "--checkpoint-dir", str(f)),
        ("run", f"{FLOWS}:counter", "--input", "1", "--checkpoint-dir", str(f), "--create"),
        ("checkpoints", "list", str(f)),
    ):
        r = cli(*argv)
        assert (r.code, r.out) == (2, "")
        assert r.err == f"superstep: error: checkpoint directory '{f}' is not a directory\n"


def test_empty_checkpoint_directory(cli: Cli, tmp_path: Path) -> None:
    r = cli("checkpoints", "list", str(tmp_path))
    assert r.code == 0 and r.out == f"no checkpoints in {tmp_path}\n"


def test_help_and_version_exit_0(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--help").code == 0
    assert cli("run", "--help").code == 0
    assert cli("--version").code == 0
    assert "superstep" in capsys.readouterr().out


def test_help_says_where_each_command_runs(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    cli("--help")
    summary = " ".join(capsys.readouterr().out.split())
    assert (
        "demo process documents with analysis executors and an aggregator, in-process or on a "
        "Dapr deployment (--runtime dapr)"
    ) in summary
    assert "run run a workflow in-process" in summary
    cli("demo", "--help")
    assert "--runtime {inprocess,dapr}" in capsys.readouterr().out


# -- the installed console script ------------------------------------------------------------
def test_installed_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "superstep"
    assert script.exists(), "install the project (pip install -e .) to get the console script"
    ok = subprocess.run(
        [str(script), "demo", "--docs", "40", "--workers", "4", "--latency-ms", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "Processed 40 documents" in ok.stdout
    assert "analysing: 100%" in ok.stderr
    bad = subprocess.run(
        [str(script), "run", "no_such_module:wf", "--input", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr == (
        "superstep: error: cannot import module 'no_such_module': no module named "
        "'no_such_module'\n"
    )


# -- the command as a process: what reaches the terminal -----------------------------------
def _superstep(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    code = "import sys; from runtime.cli import main; sys.exit(main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    # `superstep run ... | head -1`: the output line is far larger than a pipe holds, so
    # the command is still writing when the reader closes the pipe
    greeting = '{"name": "ada", "times": 100000}'
    with _superstep("run", f"{FLOWS}:greeting", "--input", greeting, cwd=tmp_path) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        code = proc.wait(timeout=60)
    assert code == 141  # 128 + SIGPIPE, as a shell shows it for a Unix tool
    assert first.split()[:2] == ["0", "started"]
    assert err == ""


def test_a_file_as_checkpoint_directory_prints_one_line_and_nothing_at_exit(
    tmp_path: Path,
) -> None:
    (tmp_path / "cps").write_text("")
    argv = ("run", f"{FLOWS}:counter", "--input", "1", "--checkpoint-dir", "cps")
    with _superstep(*argv, cwd=tmp_path) as proc:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert out == ""
    assert err == "superstep: error: checkpoint directory 'cps' is not a directory\n"
