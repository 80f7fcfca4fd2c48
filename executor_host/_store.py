"""The run store: run records, events, checkpoints, shared-state versions and the
host registry, in the Dapr state store (a component with ``keyPrefix: name`` so
every app sees the same keys).

Only this module talks to the state API. It raises the state port's errors
(``runtime.ports``), their text saying what it was doing: ``ETagMismatch`` when
somebody else wrote first (an ETag-guarded write, a barrier's commit, a run id that
exists), ``Refused`` (with the answer's ``status``) when the store refused a call for
good, and a plain ``PortError`` for any other failure, an outage or a value the store
should hold and does not (a part of a large value, a checkpoint a record names, an
expired payload), which a later try may get past.
Keys (all under the deployment's namespace, ``superstep:`` by default):

    run:<run>               the run record (run state, epoch, event and output chunk
                            counts), ETag-guarded; after a barrier that wrote a checkpoint,
                            its run state is a reference to that checkpoint (written once
                            per barrier)
    events:<run>:<n>        the n-th chunk of the run's events (from 0; the API's event ids
                            are <n>.<index in the chunk>)
    outputs:<run>:<g>:<n>   the outputs (codec JSON list) of the n-th barrier with outputs
                            of the run's generation <g> (from 0), written once, by that
                            barrier's transaction
    ckpt:<run>@<superstep>  a checkpoint (runtime.engine.Checkpoint JSON; the superstep in
                            six digits, checkpoint_id_for)
    state:<run>:<version>   the committed shared state as of superstep <version>
    result:<run>:<g>:<k>:<i>  the stored result of executor <i>'s activation in superstep <k>
                            of the run's generation <g>
    runs:head, runs:<n>     the runs index, in pages (``_run_index``)
    runs                    the runs index of the format before pages (run ids)
    host:<app id>           a host's registration (protocol.HostRecord)
    hosts                   index of host app ids
    blob:<sha256>:<i>       part i of a value larger than MAX_VALUE_BYTES in a request (or
                            moved out of a request over MAX_REQUEST_BYTES), which is
                            stored as a reference to its parts (a run record, as a
                            reference in its ``state``)

A run that ended is removed, every key of it but blob parts, once its retention has
passed (``RunStore.sweep``, ``run_keys``; the API app sweeps: ``_retention``).

Every value is written through the sidecar's HTTP state API as a JSON string that holds
the value's JSON text (see ``_sidecar``: the text crosses unchanged), so the stored
bytes are that string, quoted; reading decodes twice. A stored JSON object or array
(written as raw bytes, by gRPC) is read as it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from executor_host._batching import GroupCaller
from executor_host._run_index import PAGE_SIZE, Position, RunIndex
from runtime.checkpoint import checkpoint_id_for
from runtime.engine import Checkpoint, RunState, RunStatus, compact_json
from runtime.ports import (
    ETagMismatch,
    PortError,
    Refused,
    StateDelete,
    StatePort,
    StateWrite,
    wire_bytes,
)

__all__ = [
    "RunHead",
    "RunRecord",
    "RunStore",
    "run_keys",
]

log = logging.getLogger(__name__)


def _failed(what: str, exc: PortError) -> PortError:
    """The port's error for a failed call of the port, saying what the run store was
    doing: ``Refused`` (with its status) when the store refused it for good, else a
    plain ``PortError`` (an outage: retry). The writes guarded by an ETag name their
    conflicts themselves (``ETagMismatch``); an ``ETagMismatch`` of any other call is
    no conflict this store can tell, and a plain ``PortError`` too."""
    if isinstance(exc, Refused):
        return Refused(f"{what} was refused: {exc}", exc.status)
    return PortError(f"{what} failed: {exc}")


@dataclass(slots=True)
class RunRecord:
    """What the state store knows of a run."""

    run_id: str
    workflow: str
    signature: str
    epoch: int
    state: RunState
    factory: str | None = None
    """``module:function`` that builds the workflow, for factory-built workflows."""
    generation: int = 1
    """+1 each time the run is resumed from one of its checkpoints; stored results and
    executor instances of an earlier generation are not reused."""
    params: dict[str, Any] | None = None
    event_chunks: int = 0
    checkpoint_ranges: list[tuple[int, int]] = field(default_factory=list)
    """Supersteps with a checkpoint, as sorted ``(first, last)`` ranges: the record
    stays small however long the run (ids are ``checkpoint_id_for(run, superstep)``).
    The run trace's step digests are in the events (``superstep_completed``), its hash
    in the run state."""
    last_checkpoint: int | None = None
    """The superstep of the newest checkpoint (after a resume, not the highest one)."""
    output_chunks: int = 0
    """Barriers of this generation that yielded outputs: each wrote its outputs once,
    under ``outputs:<run>:<generation>:<n>`` (n from 0), so the record stays small
    however many outputs the run yields (``RunStore.load_outputs`` reads them)."""
    output_count: int = 0
    """Outputs of this generation so far (``inline_outputs`` included)."""
    inline_outputs: list[Any] = field(default_factory=list)
    """Outputs held in the record itself (``outputs``), as records were written before
    output chunks: read as the first outputs, and moved to an output chunk by the next
    barrier. Empty in records written since."""
    created_at: float = 0.0
    updated_at: float = 0.0
    planned_at: float = 0.0
    """Logical time of the next superstep (``ctx.now()``), fixed before it is published."""
    state_version: int = 0
    """The superstep whose commit last wrote the shared state (its ``state:`` key)."""
    traceparent: str | None = None
    """W3C traceparent of the run's span (OpenTelemetry), when the coordinator traces:
    a coordinator that takes the run over puts its superstep spans in the same trace."""
    start_key: str | None = None
    """The key of the start request that created this record (or resumed the run into
    it): the API app sends the same key when it tries a start again after an answer it
    did not get, and the coordinator then answers as if created, not "exists"."""
    start_after: int = -1
    """The last event chunk before that start (-1 for a new run): where its client's
    event stream begins."""
    first_superstep: int = 0
    """The superstep this generation began at (0 in records written before it was kept)."""
    earlier: list[tuple[int, int, int]] = field(default_factory=list)
    """(first superstep, last superstep, output chunks) of each earlier generation, in
    order: with ``first_superstep`` they name every key of the run (``run_keys``)."""
    executors: int = 0
    """Executors of the run's graph (stored results are per executor index); 0 in
    records written before it was kept."""
    etag: str | None = None

    @property
    def generation_span(self) -> tuple[int, int, int]:
        """(first superstep, last superstep, output chunks) of this generation so far."""
        return self.first_superstep, self.state.superstep, self.output_chunks

    @property
    def checkpoints(self) -> list[str]:
        """Every checkpoint id of the run, oldest superstep first."""
        return [
            checkpoint_id_for(self.run_id, s)
            for first, last in self.checkpoint_ranges
            for s in range(first, last + 1)
        ]

    def with_checkpoint(self, superstep: int) -> list[tuple[int, int]]:
        """``checkpoint_ranges`` with ``superstep`` added."""
        return _add_to_ranges(self.checkpoint_ranges, superstep)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "signature": self.signature,
            "epoch": self.epoch,
            "state": self.state.to_json(),
            "factory": self.factory,
            "params": self.params,
            "generation": self.generation,
            "event_chunks": self.event_chunks,
            "checkpoint_ranges": [list(r) for r in self.checkpoint_ranges],
            "last_checkpoint": self.last_checkpoint,
            "output_chunks": self.output_chunks,
            "output_count": self.output_count,
            **({"outputs": self.inline_outputs} if self.inline_outputs else {}),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "planned_at": self.planned_at,
            "state_version": self.state_version,
            "traceparent": self.traceparent,
            "start_key": self.start_key,
            "start_after": self.start_after,
            **({"first_superstep": self.first_superstep} if self.first_superstep else {}),
            **({"earlier": [list(g) for g in self.earlier]} if self.earlier else {}),
            "executors": self.executors,
            # beside the run state (which may be a reference): read by GET /runs and
            # retention without reading the state
            "status": self.state.status.value,
            "superstep": self.state.superstep,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], etag: str | None) -> RunRecord:
        inline = list(d.get("outputs") or [])
        return cls(
            **_head_fields(d),
            signature=d["signature"],
            epoch=int(d["epoch"]),
            state=RunState.from_json(d["state"]),
            params=d.get("params"),
            last_checkpoint=d.get("last_checkpoint"),
            output_count=int(d.get("output_count", len(inline))),
            inline_outputs=inline,
            planned_at=float(d["planned_at"]),
            state_version=int(d["state_version"]),
            traceparent=d.get("traceparent"),
            start_key=d.get("start_key"),
            start_after=int(d.get("start_after", -1)),
            etag=etag,
        )


def _head_fields(d: dict[str, Any]) -> dict[str, Any]:
    """The fields a stored run record and its head (``RunHead``) share, read with the
    defaults of records written before some of them were kept."""
    return {
        "run_id": d["run_id"],
        "workflow": d["workflow"],
        "factory": d.get("factory"),
        "generation": int(d.get("generation", 1)),
        "event_chunks": int(d["event_chunks"]),
        "checkpoint_ranges": [(int(a), int(b)) for a, b in d["checkpoint_ranges"]],
        "output_chunks": int(d.get("output_chunks", 0)),
        "created_at": float(d["created_at"]),
        "updated_at": float(d["updated_at"]),
        "first_superstep": int(d.get("first_superstep", 0)),
        "earlier": [(int(a), int(b), int(c)) for a, b, c in d.get("earlier") or []],
        "executors": int(d.get("executors", 0)),
    }


@dataclass(frozen=True, slots=True)
class RunHead:
    """A run record without its run state: what ``GET /runs`` shows of a run, and what
    retention needs to know when a run ended and which keys it wrote (``run_keys``)."""

    run_id: str
    workflow: str
    factory: str | None
    status: RunStatus
    superstep: int
    created_at: float
    updated_at: float
    generation: int
    event_chunks: int
    checkpoint_ranges: list[tuple[int, int]]
    output_chunks: int
    first_superstep: int
    earlier: list[tuple[int, int, int]]
    executors: int
    etag: str | None
    removing: bool = False
    """Retention is removing the run's keys: the run is gone for every reader."""

    @classmethod
    def from_json(cls, d: dict[str, Any], etag: str | None) -> RunHead:
        """The head of a stored record (one with ``status`` and ``superstep`` beside its
        run state: ``RunRecord.to_json``)."""
        return cls(
            **_head_fields(d),
            status=RunStatus(d["status"]),
            superstep=int(d["superstep"]),
            etag=etag,
            removing=bool(d.get(REMOVING)),
        )

    def summary(self) -> dict[str, Any]:
        """The run as ``GET /runs`` lists it (``RunSummary``)."""
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "factory": self.factory,
            "status": self.status.value,
            "superstep": self.superstep,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def run_keys(run: RunHead, executors: int) -> list[str]:
    """Every key of the run but its record, blob parts and payloads (which expire): the
    keys its record says it wrote, and some it may not have (deleting an absent key is
    no error). ``executors``: of the run's graph (its stored results are per executor
    index).

    The chunk after the last of events and of outputs is included: a commit whose ETag
    check failed may have written it on a store that applies the rest of a failed
    transaction (Redis). A generation resumed before records kept the spans of earlier
    generations (``RunRecord.earlier``) is taken to span every superstep up to the
    highest the record knows, with as many output chunks as the run has event chunks
    (a commit writes one of each at most)."""
    r = run.run_id
    keys = [f"events:{r}:{n}" for n in range(run.event_chunks + 1)]
    keys += [
        f"ckpt:{checkpoint_id_for(r, s)}"
        for first, last in run.checkpoint_ranges
        for s in range(first, last + 1)
    ]
    top = max([run.superstep, *(last for _, last in run.checkpoint_ranges)])
    unknown = max(0, run.generation - 1 - len(run.earlier))
    spans = [*[(0, top, run.event_chunks)] * unknown, *run.earlier]
    spans.append((run.first_superstep, run.superstep, run.output_chunks))
    for generation, (first, last, outputs) in enumerate(spans, start=1):
        keys += [f"outputs:{r}:{generation}:{n}" for n in range(outputs + 1)]
        keys += [f"state:{r}:{v}" for v in range(first, last + 1)]
        # the superstep after the last: in flight when the run ended (failed, cancelled)
        keys += [
            f"result:{r}:{generation}:{k}:{i}"
            for k in range(first + 1, last + 2)
            for i in range(executors)
        ]
    return list(dict.fromkeys(keys))


def _decode(data: bytes) -> Any:
    """A stored value: the JSON text inside a stored JSON string (how this store writes
    every value), else the stored JSON itself."""
    value = json.loads(data)
    return json.loads(value) if isinstance(value, str) else value


REMOVING = "$superstep.removing"
"""Set in a run record while retention removes the run's keys (``RunStore.remove_run``):
such a record is no run for any reader."""
CHECKPOINT = "$superstep.checkpoint"
"""The key of a run record's reference to the checkpoint that holds its run state."""
BLOB = "$superstep.blob"
"""The key of a reference to a value stored in parts (``RunStore``)."""
MAX_VALUE_BYTES = 1024 * 1024
"""The most bytes one stored value takes in a request body (``runtime.ports.wire_bytes``:
a JSON string, escaped, where text beyond ASCII takes up to 12 bytes a character). A
larger one is stored in parts of at most this size under content-addressed keys
(``blob:<sha256>:<i>``), and a reference to them stands in its place."""
MAX_REQUEST_BYTES = 3 * 1024 * 1024
"""The most bytes of values in one request (a barrier's transaction, a bulk save):
daprd takes bodies of at most 4 MiB (``--max-body-size``), and keys and framing need
room. Over it, the largest values of the request go to parts until it fits."""
_MAX_ESCAPED = 12
"""Bytes a character can take in ``wire_bytes``, at most."""
_READS_AT_ONCE = 16
"""Output chunks ``RunStore.load_outputs`` reads at a time."""
_BULK = 100
"""Run records read in one bulk read."""
_DELETES_AT_ONCE = 100
"""Keys deleted in one transaction (some stores take no more operations in one)."""


def _is_blob(value: Any) -> bool:
    return isinstance(value, dict) and BLOB in value and set(value) == {BLOB, "parts", "chars"}


def _add_to_ranges(ranges: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """Sorted disjoint ranges with ``n`` added (merging neighbours)."""
    out: list[tuple[int, int]] = []
    placed = False
    for first, last in ranges:
        if placed or last < n - 1:
            out.append((first, last))
        elif first > n + 1:
            out.extend([(n, n), (first, last)])
            placed = True
        else:  # touches or contains n
            out.append((min(first, n), max(last, n)))
            placed = True
    if not placed:
        out.append((n, n))
    merged: list[tuple[int, int]] = []
    for first, last in out:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


class RunStore:
    """The run store over a state port: the sidecar's HTTP state API in production
    (``SidecarClient``), ``runtime.testing.ports.InMemoryStateStore`` in tests."""

    def __init__(
        self,
        sidecar: StatePort,
        store: str,
        namespace: str = "superstep",
        *,
        max_value_bytes: int = MAX_VALUE_BYTES,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        index_page_size: int = PAGE_SIZE,
    ) -> None:
        self._sidecar = sidecar
        self._store = store
        self._prefix = f"{namespace}:"
        self._max_value = max_value_bytes
        self._max_request = max_request_bytes
        self._blobs_written: OrderedDict[str, None] = OrderedDict()
        """Digests of blobs this store wrote lately (not written again)."""
        self._index_writes = GroupCaller(self._add_all_to_index)
        self.index = RunIndex(self, page_size=index_page_size)
        """The runs index (``_run_index``)."""

    # -- large values, in parts -------------------------------------------------------
    def _size(self, text: str) -> int:
        """``wire_bytes(text)``, or a bound of it when that is small enough not to matter
        (most values: measuring costs an encoding)."""
        bound = _MAX_ESCAPED * len(text) + 2
        return bound if bound <= self._max_value else wire_bytes(text)

    def _parts(self, text: str) -> list[str]:
        """``text`` cut into parts whose stored values (JSON strings of them) each take
        at most ``max_value`` bytes in a request: as many characters as fit, measured."""
        parts: list[str] = []
        start, n = 0, self._max_value
        while start < len(text):
            part = text[start : start + n]
            size = self._size(json.dumps(part))
            while size > self._max_value:
                n = max(1, int(len(part) * self._max_value / size * 0.95))
                part = text[start : start + n]
                size = self._size(json.dumps(part))
            parts.append(part)
            start += len(part)
        return parts

    async def _fit(self, text: str, ttl_s: int | None = None, *, force: bool = False) -> str:
        """``text``, or when it takes more than one value may in a request (or when
        ``force``d), the JSON of a reference to its parts (written first: a reference is
        never stored before its parts)."""
        if not force and self._size(text) <= self._max_value:
            return text
        sha = hashlib.sha256(text.encode()).hexdigest()
        parts = self._parts(text)
        if sha not in self._blobs_written:
            meta = {"ttlInSeconds": str(ttl_s)} if ttl_s else None
            for i, part in enumerate(parts):
                try:
                    await self._sidecar.save_state(
                        self._store,
                        [(f"{self._prefix}blob:{sha}:{i}", json.dumps(part), None)],
                        meta,
                    )
                except PortError as exc:
                    raise _failed(f"writing part {i} of a large value", exc) from exc
            self._blobs_written[sha] = None
            while len(self._blobs_written) > 256:
                self._blobs_written.popitem(last=False)
        return compact_json({BLOB: sha, "parts": len(parts), "chars": len(text)})

    async def _fit_request(
        self, values: list[tuple[str, str]], ttl_s: int | None = None, *, beside: int = 0
    ) -> list[StateWrite]:
        """The writes of one request's ``values`` ((key, JSON text)), each measured once:
        a value larger than one value may be goes to parts, and then the largest ones
        until the request carries at most ``max_request`` bytes of values, ``beside``
        (the bytes of what else it carries, as the run record) included."""
        texts = [text for _, text in values]
        sizes = [self._size(text) for text in texts]
        if beside + sum(sizes) > self._max_request:
            # the sizes of small values are bounds (up to 12 times their bytes): measure
            # them before moving any to parts
            sizes = [
                wire_bytes(t) if n <= self._max_value else n
                for t, n in zip(texts, sizes, strict=True)
            ]
        total = beside + sum(sizes)
        for i in sorted(range(len(values)), key=sizes.__getitem__, reverse=True):
            if sizes[i] <= self._max_value and total <= self._max_request:
                break  # the rest are smaller still, and the request fits
            texts[i] = await self._fit(texts[i], ttl_s, force=True)
            total -= sizes[i] - self._size(texts[i])
        # still too large only for what stays beside: the sidecar says so
        return [(key, text, None) for (key, _), text in zip(values, texts, strict=True)]

    async def _unfit(self, value: Any) -> Any:
        """A value read back: a reference to parts is replaced by the value it names."""
        if not _is_blob(value):
            return value
        sha, chunks = value[BLOB], []
        for i in range(int(value["parts"])):
            data, _ = await self._read(f"blob:{sha}:{i}")
            if data is None:
                raise PortError(f"part {i} of large value {sha[:12]} is missing")
            chunks.append(_decode(data))
        text = "".join(chunks)
        if len(text) != int(value["chars"]) or hashlib.sha256(text.encode()).hexdigest() != sha:
            raise PortError(f"large value {sha[:12]} does not match its digest")
        return json.loads(text)

    async def _record_text(self, record: RunRecord, checkpoint: Checkpoint | None = None) -> str:
        """The run record's JSON, written at every barrier and read back after it, kept
        small: its run state is a reference to ``checkpoint`` when the same write stores
        that checkpoint of the same state (the state is not written twice), and its run
        state is a reference to parts when it is large; outputs are in output chunks
        (outputs a record of the format before them still holds inline are written as
        they came until the next barrier moves them, a reference to parts when large)."""
        d = record.to_json()
        if checkpoint is not None and checkpoint.state is record.state:
            d["state"] = {CHECKPOINT: checkpoint.checkpoint_id}
        for name in ("state", "outputs"):
            if name not in d:
                continue
            # each half a value at most, so that the record is one value at most
            text = compact_json(d[name])
            if self._size(text) > self._max_value // 2:
                d[name] = json.loads(await self._fit(text, force=True))
        return compact_json(d)

    async def _record(self, data: dict[str, Any], etag: str | None) -> RunRecord:
        for name in ("state", "outputs"):
            if name in data:
                data[name] = await self._unfit(data[name])
        ref = data["state"]
        if isinstance(ref, dict) and set(ref) == {CHECKPOINT}:
            stored, _ = await self._get(f"ckpt:{ref[CHECKPOINT]}")
            if stored is None:
                raise PortError(f"checkpoint {ref[CHECKPOINT]!r} of a run record is missing")
            data["state"] = stored["run_state"]
        return RunRecord.from_json(data, etag)

    # -- primitives -------------------------------------------------------------------
    async def _read(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            data, etag = await self._sidecar.get_state(self._store, self._prefix + key)
        except PortError as exc:
            raise _failed(f"reading {key!r}", exc) from exc
        return (data or None), (etag or None)

    async def _get(self, key: str) -> tuple[Any, str | None]:
        data, etag = await self._read(key)
        return (await self._unfit(_decode(data)), etag) if data is not None else (None, None)

    async def _save(self, key: str, value: Any, etag: str | None = None) -> None:
        await self._save_text(key, await self._fit(compact_json(value)), etag)

    async def _save_text(self, key: str, text: str, etag: str | None = None) -> None:
        try:
            await self._sidecar.save_state(self._store, [(self._prefix + key, text, etag)])
        except ETagMismatch as exc:
            raise ETagMismatch(f"{key!r} was changed concurrently") from exc
        except PortError as exc:
            raise _failed(f"writing {key!r}", exc) from exc

    async def _transaction(self, upserts: Sequence[StateWrite]) -> None:
        try:
            await self._sidecar.transact_state(self._store, upserts)
        except PortError as exc:
            raise _failed("the state transaction", exc) from exc

    # -- runs -------------------------------------------------------------------------
    async def load_run(self, run_id: str) -> RunRecord | None:
        """The run's record; None for a run there is none of (or that retention is
        removing)."""
        data, etag = await self._get(f"run:{run_id}")
        if data is None or data.get(REMOVING):
            return None
        return await self._record(data, etag)

    async def load_run_head(self, run_id: str) -> tuple[int, float, str | None] | None:
        """(epoch, updated_at, ETag) of the run record, without decoding its run state:
        what a coordinator checks after its own commit to know it was not fenced."""
        data, etag = await self._get(f"run:{run_id}")
        if data is None or data.get(REMOVING):
            return None
        return int(data["epoch"]), float(data["updated_at"]), etag

    async def create_run(self, record: RunRecord) -> RunRecord:
        """Write a new run record; ``ETagMismatch`` if the run id exists."""
        existing = await self.load_run(record.run_id)
        if existing is not None:
            raise ETagMismatch(f"run {record.run_id!r} already exists")
        await self._save_text(f"run:{record.run_id}", await self._record_text(record))
        await self.index.add(record.run_id, record.created_at)
        fresh = await self.load_run(record.run_id)
        assert fresh is not None
        return fresh

    async def save_run(self, record: RunRecord) -> RunRecord:
        """ETag-guarded write of the run record alone (epoch changes, cancellation)."""
        await self._save_text(
            f"run:{record.run_id}", await self._record_text(record), etag=record.etag
        )
        fresh = await self.load_run(record.run_id)
        assert fresh is not None
        return fresh

    async def commit_barrier(
        self,
        record: RunRecord,
        *,
        events: list[dict[str, Any]],
        checkpoint: Checkpoint | None,
        state_version: tuple[int, dict[str, Any]] | None,
        outputs: Sequence[Any] = (),
        reload: bool = True,
    ) -> RunRecord:
        """Commit a barrier in one state transaction: events, outputs (codec JSON),
        checkpoint, shared-state version and, last, the run record under its ETag.

        The outputs are written once, as the record's next output chunk (with any the
        record still holds inline, as records written before output chunks do); the
        record keeps their count only.

        Every key but the run record is derived from the run, its generation and the
        superstep or the counts of the record the barrier follows, and a superstep's
        commit is deterministic, so a store that applies the other operations of a
        transaction whose ETag check failed (Redis does) writes nothing new, and a
        barrier committed again after a lost answer writes the same values again.
        """
        p = self._prefix
        values: list[tuple[str, str]] = []
        if events:
            values.append(
                (f"{p}events:{record.run_id}:{record.event_chunks}", compact_json(events))
            )
        outputs_chunk = [*record.inline_outputs, *outputs]
        if outputs_chunk:
            key = f"{p}outputs:{record.run_id}:{record.generation}:{record.output_chunks}"
            values.append((key, compact_json(outputs_chunk)))
        if checkpoint is not None:
            key = f"{p}ckpt:{checkpoint.checkpoint_id}"
            values.append((key, compact_json(checkpoint.to_json())))
        if state_version is not None:
            version, state = state_version
            values.append((f"{p}state:{record.run_id}:{version}", compact_json(state)))
        new = replace(
            record,
            event_chunks=record.event_chunks + (1 if events else 0),
            output_chunks=record.output_chunks + (1 if outputs_chunk else 0),
            output_count=record.output_count + len(outputs),
            inline_outputs=[],
        )
        new_text = await self._record_text(new, checkpoint)
        ops = await self._fit_request(values, beside=self._size(new_text))
        ops.append((f"{p}run:{record.run_id}", new_text, record.etag))
        try:
            await self._transaction(ops)
        except PortError as exc:
            await self._after_failed_commit(record, new_text, exc)
        if not reload:  # the caller reads the new ETag itself (load_run_head) when it needs it
            return replace(new, etag=None)
        fresh = await self.load_run(record.run_id)
        assert fresh is not None
        return fresh

    async def _after_failed_commit(
        self, record: RunRecord, new_text: str, error: PortError
    ) -> None:
        """Tell what a failed barrier transaction did, by reading the run record again
        (never by the error's text, which on Redis does not say "etag").

        Still at the ETag it was guarded by: the record was not written, and the
        failure was the store's or the sidecar's (``error`` as it is: a ``PortError``,
        retry; ``Refused``, the store will not take it). At another
        ETag and holding what this commit wrote: it went through and only its answer
        was lost (return). Anything else: somebody else wrote first (``ETagMismatch``:
        this coordinator is fenced)."""
        try:
            raw, etag = await self._read(f"run:{record.run_id}")
        except PortError:
            raise error from None  # nothing more can be known now: the caller retries
        stored = _decode(raw) if raw is not None else None
        if stored is None:
            raise ETagMismatch(f"run {record.run_id!r} has no run record any more") from error
        if etag == record.etag:
            raise error
        if stored == json.loads(new_text):
            return
        raise ETagMismatch(
            f"run {record.run_id!r} was written by another coordinator (ETag {record.etag} "
            f"is now {etag})"
        ) from error

    async def load_events(self, run_id: str, chunk: int) -> list[dict[str, Any]]:
        data, _ = await self._get(f"events:{run_id}:{chunk}")
        return list(data or [])

    async def load_outputs(self, record: RunRecord) -> list[Any]:
        """Every output of the run's generation so far (codec JSON), in order: those the
        record holds inline, then its output chunks'. ``PortError`` when a chunk is
        missing."""
        keys = [
            f"outputs:{record.run_id}:{record.generation}:{n}" for n in range(record.output_chunks)
        ]
        outputs = list(record.inline_outputs)
        for start in range(0, len(keys), _READS_AT_ONCE):
            batch = keys[start : start + _READS_AT_ONCE]
            for key, (data, _) in zip(
                batch, await asyncio.gather(*map(self._get, batch)), strict=True
            ):
                if data is None:
                    raise PortError(f"output chunk {key!r} of a run record is missing")
                outputs.extend(data)
        return outputs

    async def load_checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        data, _ = await self._get(f"ckpt:{checkpoint_id}")
        return Checkpoint.from_json(data) if data is not None else None

    async def load_shared_state(self, run_id: str, version: int) -> dict[str, Any]:
        data, _ = await self._get(f"state:{run_id}:{version}")
        if data is None:
            raise PortError(f"shared state version {version} of run {run_id!r} is missing")
        return dict(data)

    async def load_result(
        self, run_id: str, generation: int, superstep: int, index: int
    ) -> dict[str, Any] | None:
        data, _ = await self._get(f"result:{run_id}:{generation}:{superstep}:{index}")
        return dict(data) if data is not None else None

    async def save_result(
        self, run_id: str, generation: int, superstep: int, index: int, result: dict[str, Any]
    ) -> None:
        await self._save(f"result:{run_id}:{generation}:{superstep}:{index}", result)

    # -- payloads by reference (see _payloads) ----------------------------------------
    async def save_payloads(self, items: dict[str, str], ttl_s: int) -> None:
        """Write payloads (key -> JSON text) in one bulk save; they expire after ``ttl_s``
        (they are only read while their superstep is in flight)."""
        if not items:
            return
        meta = {"ttlInSeconds": str(ttl_s)} if ttl_s > 0 else None
        writes = await self._fit_request([(self._prefix + k, v) for k, v in items.items()], ttl_s)
        try:
            await self._sidecar.save_state(self._store, writes, meta)
        except PortError as exc:
            raise _failed(f"writing {len(items)} payload(s)", exc) from exc

    async def load_payload(self, key: str) -> tuple[Any, int]:
        """A payload and its size in bytes; ``PortError`` when it is missing."""
        data, _ = await self._read(key)
        if data is None:
            raise PortError(f"payload {key!r} is missing (expired or never written)")
        value = _decode(data)
        return await self._unfit(value), len(data) if not _is_blob(value) else int(value["chars"])

    # -- listing and retention --------------------------------------------------------
    async def list_runs(
        self,
        *,
        limit: int,
        before: Position | None = None,
        keep: Callable[[RunHead], bool] = lambda _: True,
        scan: int = 1000,
    ) -> tuple[list[RunHead], Position | None]:
        """Runs newest first: at most ``limit`` that ``keep``, from the index entries
        before ``before`` (from the newest when None), and the position of the last
        entry read when more may follow (a cursor: ``before`` of the next call).

        Reads the index pages it needs and the records of their entries in bulk, at
        most ``limit + scan`` of them: when few runs match, the answer may hold fewer
        than ``limit`` and still a position to go on from."""
        layout = await self.index.layout()
        found: list[RunHead] = []
        read = 0
        last: Position | None = None
        for number in layout.numbers(before):
            entries = await self.index.read(layout, number)
            newest = [e for e in reversed(entries) if before is None or e.position < before]
            for start in range(0, len(newest), limit):
                chunk = newest[start : start + limit]
                heads = await self.load_heads([e.run_id for e in chunk])
                for entry, head in zip(chunk, heads, strict=True):
                    last = entry.position
                    if head is not None and not head.removing and keep(head):
                        found.append(head)
                        if len(found) == limit:
                            return found, last
                read += len(chunk)
                if read >= limit + scan:
                    return found, last
        return found, None

    async def load_heads(self, run_ids: Sequence[str]) -> list[RunHead | None]:
        """The heads of runs' records (``RunHead``), read in bulk; None where there is no
        record. One being removed is read with ``removing`` set."""
        out: list[RunHead | None] = []
        for start in range(0, len(run_ids), _BULK):
            keys = [f"{self._prefix}run:{r}" for r in run_ids[start : start + _BULK]]
            try:
                items = await self._sidecar.get_bulk_state(self._store, keys)
            except PortError as exc:
                raise _failed(f"reading {len(keys)} run records", exc) from exc
            for data, etag in items:
                out.append(await self._head(_decode(data), etag or None) if data else None)
        return out

    async def _head(self, data: dict[str, Any], etag: str | None) -> RunHead:
        if "status" not in data:  # written before records held it beside the run state
            state = (await self._record(dict(data), etag)).state
            data = {**data, "status": state.status.value, "superstep": state.superstep}
        return RunHead.from_json(data, etag)

    async def sweep(
        self,
        now: float,
        retention_s: float,
        executors_of: Callable[[RunHead], int] = lambda _: 0,
    ) -> int:
        """Remove the runs that ended (``RunStatus.is_final``) more than ``retention_s``
        before ``now`` (``remove_run``) and their index entries, and the entries of runs
        that have no record; the number of runs removed.

        Reads the index from its oldest page, and the records of the entries made before
        that time only, until a page holds a newer one: the runs after it started later.
        ``executors_of``: the executors of a run whose record does not say (written
        before records kept it)."""
        cutoff = now - retention_s
        layout = await self.index.layout()
        removed = 0
        for number in reversed(layout.numbers()):
            entries = await self.index.read(layout, number)
            old = [e for e in entries if e.created_at is None or e.created_at <= cutoff]
            gone = []
            heads = await self.load_heads([e.run_id for e in old])  # in bulks of _BULK
            for entry, head in zip(old, heads, strict=True):
                if head is None:
                    gone.append(entry)
                    continue
                expired = head.status.is_final and head.updated_at < cutoff
                if (head.removing or expired) and await self.remove_run(
                    head, head.executors or executors_of(head)
                ):
                    gone.append(entry)
                    removed += 1
            if gone:
                await self.index.remove(number, gone)
            if len(old) < len(entries):
                break
        return removed

    async def remove_run(self, run: RunHead, executors: int) -> bool:
        """Delete every key of a run (``run_keys``) and, last, its record; False when the
        record changed since ``run`` was read (a resume), which leaves the run alone.

        The record is first marked as being removed (under its ETag): from then on no
        reader sees the run, and a removal that stopped half-way is finished by the
        next sweep, from the marked record. Blob parts are not removed (content-
        addressed, another run may name the same), nor payloads (they expire)."""
        key = f"run:{run.run_id}"
        etag = run.etag
        if not run.removing:
            data, etag = await self._get(key)
            if data is None or etag != run.etag:
                return data is None
            # with its status beside the run state, which may name a checkpoint that is
            # gone by the time a sweep finishes a removal cut short
            marked = {**data, "status": run.status.value, "superstep": run.superstep}
            try:
                await self._save_text(key, compact_json({**marked, REMOVING: True}), etag)
            except ETagMismatch:
                return False
        keys = [self._prefix + k for k in run_keys(run, executors)]
        for start in range(0, len(keys), _DELETES_AT_ONCE):
            await self._delete([(k, None) for k in keys[start : start + _DELETES_AT_ONCE]])
        data, etag = await self._get(key)
        if data is None:
            return True
        if not data.get(REMOVING) or etag is None:
            return False  # a new run of this id since
        try:
            await self.delete_record(run.run_id, etag)
        except ETagMismatch:
            return False
        log.info("run %s: removed (ended at %.0f, retention)", run.run_id, run.updated_at)
        return True

    async def delete_record(self, run_id: str, etag: str) -> None:
        """Delete the run's record, guarded by ``etag`` (``ETagMismatch``)."""
        await self.delete_value(f"run:{run_id}", etag)

    async def _delete(self, deletes: Sequence[StateDelete]) -> None:
        try:
            await self._sidecar.delete_state(self._store, deletes)
        except ETagMismatch as exc:
            raise ETagMismatch(f"{deletes[0][0]!r} was changed concurrently") from exc
        except PortError as exc:
            raise _failed(f"deleting {len(deletes)} key(s)", exc) from exc

    # -- whole values, for the runs index (_run_index.Values) --------------------------
    async def get_value(self, key: str) -> tuple[Any, str | None]:
        return await self._get(key)

    async def put_value(self, key: str, value: Any, etag: str | None) -> None:
        await self._save(key, value, etag)

    async def delete_value(self, key: str, etag: str) -> None:
        await self._delete([(self._prefix + key, etag)])

    # -- hosts ------------------------------------------------------------------------
    async def register_host(self, host_id: str, record: dict[str, Any]) -> None:
        await self._save(f"host:{host_id}", record)
        await self._add_to_index("hosts", host_id)

    async def list_hosts(self) -> list[dict[str, Any]]:
        ids, _ = await self._get("hosts")
        out = []
        for host_id in ids or []:
            data, _ = await self._get(f"host:{host_id}")
            if data is not None:
                out.append(data)
        return out

    async def _add_to_index(self, key: str, item: str) -> None:
        """Add ``item`` to the list under ``key``. The items added while a write of the
        index is in flight go together in the next one: each write of an index is one
        read-modify-write of the whole list, so a write per item would have concurrent
        additions (every run started at once) lose their ETag race to each other until
        their retries run out."""
        await self._index_writes.submit(key, item, len(item))

    async def _add_all_to_index(self, key: str, new: list[str]) -> None:
        """Add ``new`` to a list under ``key``: ETag-guarded read-modify-write, re-read
        until every item is seen (the first write of a new index has no ETag to guard
        it); only other apps' writes of the index compete with this one."""
        for _ in range(50):
            data, etag = await self._get(key)
            items = list(data or [])
            seen = set(items)
            missing = [item for item in dict.fromkeys(new) if item not in seen]
            if not missing:
                return
            try:
                await self._save(key, items + missing, etag=etag)
            except ETagMismatch:
                continue
        raise PortError(
            f"could not add {', '.join(map(repr, new[:3]))}{' …' if len(new) > 3 else ''} "
            f"to the {key!r} index: too much contention"
        )
