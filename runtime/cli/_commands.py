"""``superstep run``, ``superstep graph`` and ``superstep checkpoints list``."""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic_core import to_jsonable_python

from runtime.checkpoint import CheckpointInfo, FileCheckpointStorage
from runtime.cli._common import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    CliError,
    dumps,
    format_table,
    load_workflow,
    one_line,
    parse_json,
    to_input,
)
from runtime.engine import Checkpoint, ErrorInfo, PendingRequest, RunStatus
from runtime.errors import CheckpointError, CodecError, RemoteError, RequestError
from runtime.workflow import RunResult, Workflow, WorkflowEvent, response_from_json

if TYPE_CHECKING:
    from runtime.cli._common import SubParsers

__all__ = [
    "add_checkpoints_parser",
    "add_graph_parser",
    "add_run_parser",
    "checkpoint_directory",
]

_OK_STATUSES = (RunStatus.COMPLETED, RunStatus.AWAITING_INPUT)


# -- run --------------------------------------------------------------------------------
async def run_workflow(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    remote = args.url is not None
    if args.run is not None and not remote:
        raise CliError("--run names a run of a deployment: give --url too")
    if args.token is not None and not remote:
        raise CliError("--token is the API token of a deployment: give --url too")
    answering = args.run is not None
    if args.resume is not None and args.checkpoint_dir is None and not remote:
        raise CliError("--resume needs --checkpoint-dir (the directory holding the checkpoint)")
    if args.resume is None and args.input is None and not answering:
        raise CliError("give --input JSON (or --resume CHECKPOINT_ID with --checkpoint-dir)")
    if sum(x is not None for x in (args.resume, args.input, args.run)) > 1:
        raise CliError("give one of --input, --resume and --run")
    if args.responses is not None and args.resume is None and not answering:
        hint = (
            "--run RUN_ID (with --url)" if remote else "--resume CHECKPOINT_ID and --checkpoint-dir"
        )
        raise CliError(f"--responses answers the pending requests of a paused run: give {hint}")
    if answering and args.responses is None:
        raise CliError("--run answers a paused run: give --responses JSON too")
    if args.create and args.checkpoint_dir is None:
        raise CliError("--create makes the --checkpoint-dir directory: give --checkpoint-dir")
    raw_input = parse_json(args.input, "--input") if args.input is not None else None
    raw_responses = parse_json(args.responses, "--responses") if args.responses else None
    wf = load_workflow(args.workflow)

    storage = None
    if args.checkpoint_dir is not None:
        if args.resume is not None:  # it must hold the checkpoint already: nothing to create
            directory = checkpoint_directory(args.checkpoint_dir, create=False)
        else:
            hint = " (--create makes it)"
            directory = checkpoint_directory(args.checkpoint_dir, create=args.create, hint=hint)
        storage = FileCheckpointStorage(directory)
    kwargs: dict[str, Any] = {"checkpoint_storage": storage}
    if remote:
        from runtime.client import RemoteRuntime

        kwargs["runtime"] = RemoteRuntime(args.url, token=args.token)
    if answering:
        pending = await _remote_pending(kwargs["runtime"], args.run)
        kwargs["run_id"] = args.run
        kwargs["responses"] = _to_responses(wf, pending, raw_responses)
        stream = wf.run(stream=True, **kwargs)
    elif args.resume is not None:
        if storage is not None:
            cp = await _find_checkpoint(storage, args.resume, wf)
        else:  # a checkpoint of the deployment's
            cp = Checkpoint.from_json(await kwargs["runtime"].checkpoint(args.resume))
        kwargs["checkpoint_id"] = cp.checkpoint_id
        if raw_responses is not None:
            kwargs["responses"] = _to_responses(wf, cp.state.pending, raw_responses)
        stream = wf.run(stream=True, **kwargs)
    else:
        stream = wf.run(to_input(wf, raw_input), stream=True, **kwargs)

    tracebacks = bool(args.run_traceback or args.traceback)
    try:
        async for ev in stream:
            if not args.quiet:
                out.write(_event_json(ev) if args.json else _event_line(ev, tracebacks))
                out.flush()
        result = await stream
    except (CheckpointError, RequestError, CodecError, RemoteError) as exc:
        raise CliError(one_line(exc)) from exc
    except (TypeError, ValueError) as exc:  # the runtime refusing the input or responses
        raise CliError(one_line(exc)) from exc
    finally:
        if storage is not None:
            storage.close()
    _print_result(out, result, as_json=args.json, tracebacks=tracebacks)
    if result.status is RunStatus.AWAITING_INPUT and not args.json:
        answer = _answer_command(args, result)
        if answer is not None:
            out.write(f"answer with:\n  {answer}\n")
    return EXIT_OK if result.status in _OK_STATUSES else EXIT_RUN_FAILED


async def _remote_pending(runtime: Any, run_id: str) -> dict[str, PendingRequest]:
    """The pending requests of a deployment's run, as the engine keeps them."""
    from runtime.client import RemoteRuntime

    assert isinstance(runtime, RemoteRuntime)
    try:
        view = await runtime.run_view(run_id)
    except RemoteError as exc:
        raise CliError(one_line(exc)) from exc
    pending = [PendingRequest.from_json(p) for p in view.get("pending_requests") or []]
    if not pending:
        raise CliError(f"run {run_id!r} has no pending requests (status {view.get('status')})")
    return {p.request_id: p for p in pending}


def _answer_command(args: argparse.Namespace, result: RunResult) -> str | None:
    """The command that answers a paused run's requests (placeholders for the values)."""
    example = json.dumps({p.request_id: "<answer>" for p in result.pending_requests})
    parts = ["superstep", "run", args.workflow]
    if args.url is not None:
        parts += ["--url", args.url, "--run", result.run_id]
    elif args.checkpoint_dir is not None and result.last_checkpoint_id is not None:
        parts += ["--checkpoint-dir", args.checkpoint_dir, "--resume", result.last_checkpoint_id]
    else:
        return None  # an in-process run without checkpoints cannot be continued by a command
    parts += ["--responses", example]
    return " ".join(shlex.quote(p) for p in parts)


async def _find_checkpoint(storage: FileCheckpointStorage, wanted: str, wf: Workflow) -> Checkpoint:
    if wanted == "latest":
        infos = await storage.list(workflow=wf.name)
        if not infos:
            raise CliError(f"no checkpoints of workflow {wf.name!r} in {storage.directory}")
        wanted = max(infos, key=lambda i: (i.created_at, i.superstep)).checkpoint_id
    try:
        return await storage.load(wanted)
    except CheckpointError as exc:
        try:
            known = {i.checkpoint_id for i in await storage.list()}
        except CheckpointError:
            known = {wanted}  # the directory holds unreadable files: report the load error
        if wanted not in known:
            raise CliError(
                f"no checkpoint {wanted!r} in {storage.directory} "
                f"(superstep checkpoints list {storage.directory} shows what is there)"
            ) from exc
        raise CliError(one_line(exc)) from exc


def _to_responses(wf: Workflow, pending: Mapping[str, PendingRequest], raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise CliError('--responses must be a JSON object: {"request_id": response, ...}')
    out: dict[str, Any] = {}
    for rid, value in raw.items():
        req = pending.get(rid)
        if req is None:
            known = ", ".join(sorted(pending)) or "none"
            raise CliError(f"--responses: no pending request {rid!r} (pending: {known})")
        try:  # the same check as POST /runs/{id}/responses
            out[rid] = response_from_json(wf, req, value)
        except (CodecError, RequestError) as exc:
            raise CliError(f"--responses: {rid!r}: {one_line(exc)}") from exc
    return out


def _event_line(ev: WorkflowEvent, tracebacks: bool = False) -> str:
    step = f"{ev.superstep:>4}" if ev.superstep is not None else "   -"
    bits = [step, f"{ev.type:<20}", ev.executor_id or "-"]
    if ev.request_id is not None:
        bits.append(f"request={ev.request_id}")
    if ev.data is not None:
        bits.append(dumps(ev.data))
    elif ev.details:
        # a failed activation's traceback follows the line, with --traceback only
        bits.append(dumps({k: v for k, v in ev.details.items() if k != "traceback"}))
    line = " ".join(bits).rstrip() + "\n"
    # (the failure that ends the run shows its traceback with the run's error)
    traceback = ev.details.get("traceback") if tracebacks and ev.type != "executor_failed" else None
    return line + _indent(traceback) if isinstance(traceback, str) else line


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


def _event_json(ev: WorkflowEvent) -> str:
    record = {
        "event": ev.type,
        "superstep": ev.superstep,
        "executor_id": ev.executor_id,
        "request_id": ev.request_id,
        "data": ev.data,
        "details": ev.details,
    }
    return json.dumps(to_jsonable_python(record, fallback=repr), ensure_ascii=False) + "\n"


def _print_result(out: TextIO, result: RunResult, *, as_json: bool, tracebacks: bool) -> None:
    pending = [
        {
            "request_id": p.request_id,
            "executor_id": p.executor_id,
            "response_type": p.response_type,
            "data": p.data,
        }
        for p in result.pending_requests
    ]
    if as_json:
        record = {
            "result": result.status.value,
            "run_id": result.run_id,
            "outputs": result.outputs,
            "pending_requests": pending,
            "supersteps": result.supersteps,
            "trace_hash": result.trace_hash,
            "last_checkpoint_id": result.last_checkpoint_id,
            "error": result.error.message if result.error else None,
            "error_info": result.error.to_json() if result.error else None,
        }
        out.write(json.dumps(to_jsonable_python(record, fallback=repr), ensure_ascii=False) + "\n")
        return
    w = out.write
    w(f"status: {result.status.value}\n")
    w(f"outputs: {dumps(result.outputs)}\n")
    if pending:
        w(f"pending requests: {len(pending)}\n")
        for p in pending:
            w(
                f"  {p['request_id']}  executor={p['executor_id']}  "
                f"response_type={p['response_type']}  data={dumps(p['data'])}\n"
            )
    else:
        w("pending requests: none\n")
    w(f"supersteps: {result.supersteps}\n")
    w(f"trace hash: {result.trace_hash}\n")
    if result.last_checkpoint_id:
        w(f"last checkpoint: {result.last_checkpoint_id}\n")
    if result.error is not None:
        _print_error(w, result.error, tracebacks)


def _print_error(w: Callable[[str], object], error: ErrorInfo, tracebacks: bool) -> None:
    """``error: Type: message``; for an executor's failure, why each attempt failed
    (when there were several) and, with ``tracebacks``, the traceback of the exception
    its handler raised, as formatted where it ran."""
    w(f"error: {' '.join(str(error).split())}\n")
    origin = error.cause or error
    if len(origin.attempts) > 1:
        for a in origin.attempts:
            w(f"  attempt {a.attempt}: {' '.join(str(a).split())}\n")
    if origin.traceback is None:
        return
    if tracebacks:
        w(_indent(origin.traceback))
    else:
        w("  (--traceback shows the handler's traceback)\n")


def add_run_parser(sub: SubParsers) -> None:
    p = sub.add_parser(
        "run",
        help="run a workflow in-process, printing its events and result",
        description=(
            "Run module:attr (a Workflow, or a zero-argument function returning one) on the "
            "in-process runtime, or with --url on a deployment of the Dapr runtime. Exit status: 0 completed or awaiting input, 1 failed, stalled "
            "or cancelled, 2 bad arguments."
        ),
    )
    p.add_argument("workflow", metavar="module:attr")
    p.add_argument(
        "--input",
        metavar="JSON",
        help="the input message; a JSON object becomes the start executor's dataclass/model",
    )
    p.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="write a checkpoint at every barrier to DIR, an existing directory",
    )
    p.add_argument(
        "--create",
        action="store_true",
        help="create --checkpoint-dir (and its parents) when it does not exist",
    )
    p.add_argument(
        "--resume",
        metavar="CHECKPOINT_ID",
        help="continue from a checkpoint in --checkpoint-dir ('latest' for the newest)",
    )
    p.add_argument(
        "--responses",
        metavar="JSON",
        help='answers to pending requests when resuming: {"request_id": response, ...}',
    )
    p.add_argument(
        "--url",
        metavar="URL",
        help="run on a deployment (the Dapr runtime's HTTP API at URL) instead of in-process",
    )
    p.add_argument(
        "--token",
        metavar="TOKEN",
        help="the deployment's API token (default: SUPERSTEP_API_TOKEN)",
    )
    p.add_argument(
        "--run",
        metavar="RUN_ID",
        help="with --url and --responses: answer the pending requests of this paused run",
    )
    p.add_argument("--json", action="store_true", help="print events and result as JSON lines")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the result")
    p.add_argument(
        "--traceback",
        dest="run_traceback",
        action="store_true",
        help="print the traceback of a handler's exception with the error and with each "
        "failed activation's event (the type and message are always printed)",
    )
    p.set_defaults(handler=run_workflow)


# -- graph --------------------------------------------------------------------------------
async def show_graph(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    wf = load_workflow(args.workflow)
    out.write(wf.to_mermaid() if args.format == "mermaid" else wf.to_dot())
    return EXIT_OK


def add_graph_parser(sub: SubParsers) -> None:
    p = sub.add_parser(
        "graph",
        help="print a workflow's graph as Mermaid or Graphviz DOT",
        description="Print the graph of module:attr (a Workflow or a function returning one).",
    )
    p.add_argument("workflow", metavar="module:attr")
    p.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    p.set_defaults(handler=show_graph)


# -- checkpoints ---------------------------------------------------------------------------
async def list_checkpoints(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    directory = checkpoint_directory(args.directory, create=False)
    storage = FileCheckpointStorage(directory)
    try:
        infos = await storage.list(run_id=args.run)
    except CheckpointError as exc:
        raise CliError(one_line(exc)) from exc
    finally:
        storage.close()
    if not infos:
        out.write(f"no checkpoints in {directory}\n")
        return EXIT_OK
    out.write(_table(infos))
    return EXIT_OK


def checkpoint_directory(name: str, *, create: bool, hint: str = "") -> Path:
    """The checkpoint directory ``name``; made when missing and ``create``, else refused
    (with ``hint`` added to the error)."""
    directory = Path(name)
    if directory.is_dir():
        return directory
    if directory.exists():
        raise CliError(f"checkpoint directory {name!r} is not a directory")
    if not create:
        raise CliError(f"no checkpoint directory {name!r}{hint}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create checkpoint directory {name!r}: {exc.strerror}") from exc
    return directory


def _table(infos: list[CheckpointInfo]) -> str:
    header = ("id", "run", "superstep", "status", "pending", "created")
    rows = [
        (
            i.checkpoint_id,
            i.run_id,
            str(i.superstep),
            i.status,
            str(i.pending_requests),
            datetime.datetime.fromtimestamp(i.created_at).isoformat(sep=" ", timespec="seconds"),
        )
        for i in infos
    ]
    return "\n".join(format_table(header, rows, right={2, 4})) + "\n"


def add_checkpoints_parser(sub: SubParsers) -> None:
    p = sub.add_parser("checkpoints", help="inspect checkpoint directories")
    csub = p.add_subparsers(dest="checkpoints_command", metavar="COMMAND", required=True)
    lp = csub.add_parser(
        "list",
        help="list the checkpoints in a directory",
        description="List the checkpoints a FileCheckpointStorage wrote to DIR, oldest first.",
    )
    lp.add_argument("directory", metavar="DIR")
    lp.add_argument("--run", metavar="RUN_ID", help="only the checkpoints of this run")
    lp.set_defaults(handler=list_checkpoints)
