"""An app that starts before its sidecar listens waits for it (``dapr run -f`` starts
the app right after spawning daprd): ``SidecarClient.wait_outbound``."""

from __future__ import annotations

import asyncio

import pytest

from executor_host._sidecar import SidecarClient, SidecarError
from sidecar.testing import free_port


async def _outbound_server(port: int) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", port)


async def test_waits_until_the_sidecar_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("DAPR_HTTP_PORT", str(port))
    client = SidecarClient()
    waiting = asyncio.create_task(client.wait_outbound(30))
    await asyncio.sleep(0.5)  # nothing listens yet: the wait goes on
    assert not waiting.done()
    server = await _outbound_server(port)
    try:
        await asyncio.wait_for(waiting, 10)
    finally:
        server.close()
        await client.aclose()


async def test_gives_up_after_its_deadline_naming_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAPR_HTTP_PORT", str(free_port()))
    client = SidecarClient()
    try:
        with pytest.raises(SidecarError, match=r"not ready within 0\.5s"):
            await client.wait_outbound(0.5)
    finally:
        await client.aclose()
