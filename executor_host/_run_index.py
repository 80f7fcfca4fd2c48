"""The runs index: the runs the store holds, newest first, in pages of bounded size.

Keys (under the deployment's namespace):

    runs:head   ``{"page": n, "first": f, "runs": [entry, ...]}``: page n, the newest,
                ETag-guarded. A start adds its run to it: one read and one write of at
                most ``PAGE_SIZE`` entries, however many runs the store holds. When it is
                full, its entries are written once as page n (``runs:<n>``) and the head
                goes on with page n + 1.
    runs:<k>    sealed page k, f <= k < n: written once, then only emptied by retention,
                and removed once empty (``first`` then moves past it)
    runs        the index of the format before pages (a list of run ids, oldest first):
                listed after every page, never added to, emptied by retention

An entry is ``[run id, created_at]`` (a bare run id in the old index), or null once
retention removed its run: entries never move, so a position in the index (page,
index), which is what a listing's cursor holds, stays valid.

Only the run store uses it (``RunStore.index``), over the store's own reads and writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from executor_host._batching import GroupCaller
from runtime.ports import ETagMismatch, PortError

__all__ = ["PAGE_SIZE", "Entry", "Layout", "Position", "RunIndex", "Values"]

PAGE_SIZE = 256
"""Entries a page holds: a start rewrites at most this many (about 40 bytes each)."""
HEAD = "runs:head"
LEGACY = "runs"
LEGACY_PAGE = -1
"""The page number of the old index: after (older than) every page."""
_TRIES = 50

Position = tuple[int, int]
"""(page, index) of an entry. Newest first is descending order: a listing from a
position goes on with the entries before it."""


class Values(Protocol):
    """The reads and writes of whole values the index needs (the run store's)."""

    async def get_value(self, key: str) -> tuple[Any, str | None]: ...

    async def put_value(self, key: str, value: Any, etag: str | None) -> None:
        """Write ``value``, guarded by ``etag`` when given (``ETagMismatch``)."""
        ...

    async def delete_value(self, key: str, etag: str) -> None:
        """Delete ``key`` guarded by ``etag`` (``ETagMismatch``)."""
        ...


@dataclass(frozen=True, slots=True)
class Entry:
    run_id: str
    created_at: float | None
    """None in the old index, which did not keep it."""
    page: int
    index: int

    @property
    def position(self) -> Position:
        return self.page, self.index


@dataclass(frozen=True, slots=True)
class Layout:
    """The index as its head says, read once: the head page's number and entries, and
    the oldest sealed page still stored."""

    page: int
    first: int
    head: list[Any]

    def numbers(self, before: Position | None = None) -> list[int]:
        """The page numbers newest first (the old index last), from ``before``'s page."""
        numbers = [*range(self.page, self.first - 1, -1), LEGACY_PAGE]
        return numbers if before is None else [n for n in numbers if n <= before[0]]


def _entries(number: int, raw: Sequence[Any]) -> list[Entry]:
    """The entries of a page, oldest first, without those removed (null)."""
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            out.append(Entry(item, None, number, i))
        elif item is not None:
            out.append(Entry(str(item[0]), float(item[1]), number, i))
    return out


def _run_of(item: Any) -> str | None:
    return item if isinstance(item, str) or item is None else str(item[0])


def _page_key(number: int) -> str:
    return LEGACY if number == LEGACY_PAGE else f"runs:{number}"


class RunIndex:
    """The runs index over ``values``; a ``PortError`` when the index could not be
    written for contention (a later try may get past it)."""

    def __init__(self, values: Values, *, page_size: int = PAGE_SIZE) -> None:
        self._values = values
        self._page_size = page_size
        self._adds = GroupCaller(self._add_all)

    async def add(self, run_id: str, created_at: float) -> None:
        """Add a run to the newest page. The runs added while a write of the head is in
        flight go together in the next one (the head is one ETag-guarded value, which
        concurrent starts would otherwise race each other for)."""
        await self._adds.submit(HEAD, (run_id, created_at), len(run_id) + 24)

    async def _add_all(self, _key: str, new: list[tuple[str, float]]) -> None:
        pending = dict(new)
        for _ in range(_TRIES):
            head, etag = await self._values.get_value(HEAD)
            head = head or {"page": 0, "first": 0, "runs": []}
            runs: list[Any] = list(head["runs"])
            seen = {_run_of(item) for item in runs}
            missing: list[Any] = [[r, c] for r, c in pending.items() if r not in seen]
            if not missing:
                return
            if len(runs) >= self._page_size:
                # seal the full page: whoever writes it writes the same entries (but for
                # ones retention removed meanwhile, which it removes again)
                await self._values.put_value(_page_key(head["page"]), runs, None)
                added = missing[: self._page_size]
                fresh = {**head, "page": head["page"] + 1, "runs": added}
            else:
                added = missing[: self._page_size - len(runs)]
                fresh = {**head, "runs": runs + added}
            try:
                await self._values.put_value(HEAD, fresh, etag)
            except ETagMismatch:
                continue
            if etag is not None:
                for item in added:
                    del pending[item[0]]
                if not pending:
                    return
            # else: the first head, which no ETag guards: read again, as a concurrent
            # first write may have replaced it
        raise PortError(
            f"could not add {len(pending)} run(s) to the runs index: too much contention"
        )

    async def layout(self) -> Layout:
        head, _ = await self._values.get_value(HEAD)
        if head is None:
            return Layout(0, 0, [])
        return Layout(int(head["page"]), int(head["first"]), list(head["runs"]))

    async def read(self, layout: Layout, number: int) -> list[Entry]:
        """The entries of page ``number`` (of ``layout``), oldest first."""
        if number == layout.page:
            raw = layout.head
        else:
            raw, _ = await self._values.get_value(_page_key(number))
        return _entries(number, raw or [])

    async def remove(self, number: int, gone: Sequence[Entry]) -> None:
        """Null the entries ``gone`` of page ``number`` (whose runs are gone); a sealed
        page, or the old index, left with none is deleted."""
        for _ in range(_TRIES):
            head, head_etag = await self._values.get_value(HEAD)
            in_head = head is not None and number == int(head["page"])
            value, etag = (
                (head, head_etag) if in_head else await self._values.get_value(_page_key(number))
            )
            if value is None:
                return
            raw = list(value["runs"] if in_head else value)
            for entry in gone:
                if entry.index < len(raw) and _run_of(raw[entry.index]) == entry.run_id:
                    raw[entry.index] = None
            try:
                if in_head:
                    await self._values.put_value(HEAD, {**value, "runs": raw}, etag)
                elif any(item is not None for item in raw):
                    await self._values.put_value(_page_key(number), raw, etag)
                else:
                    assert etag is not None
                    await self._values.delete_value(_page_key(number), etag)
                    if number != LEGACY_PAGE:
                        await self._advance_first(number)
            except ETagMismatch:
                continue
            return

    async def _advance_first(self, removed: int) -> None:
        """Move the head's ``first`` past page ``removed`` (and the pages after it that
        are gone too) when it is the first."""
        for _ in range(_TRIES):
            head, etag = await self._values.get_value(HEAD)
            if head is None or int(head["first"]) != removed:
                return
            first = removed + 1
            while (
                first < int(head["page"])
                and (await self._values.get_value(_page_key(first)))[0] is None
            ):
                first += 1
            try:
                await self._values.put_value(HEAD, {**head, "first": first}, etag)
            except ETagMismatch:
                continue
            return
