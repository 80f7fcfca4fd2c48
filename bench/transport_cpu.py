#!/usr/bin/env python
"""CPU per call of the sidecar APIs the apps use, gRPC (the SDK's aio ``DaprClient``)
against HTTP (one pooled aiohttp session), on both ends.

Run:  .venv/bin/python bench/transport_cpu.py [--n 2000]

Starts a local sidecar (in-memory state store, Redis Streams pub/sub; needs Redis on
127.0.0.1:6379) in this process, then for each (operation, transport) a client process
that makes ``--n`` calls one after another after a warm-up. Reports the client's CPU
time per call (its process time) and the sidecar's (this process's CPU time over the
client's whole life, divided by its calls, so it includes the warm-up's share).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

RESOURCES = {
    "memstore.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: memstore}\n"
    "spec: {type: state.in-memory, version: v1, metadata: []}\n",
    "bus.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: bus}\n"
    "spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n"
    "  - {name: redisHost, value: 'localhost:6379'}\n",
}
OPERATIONS = ("get", "save", "publish")
WARM_UP = 50
VALUE = b'{"v":1}'


async def _client(transport: str, op: str, http_port: int, grpc_port: int, n: int) -> None:
    call: Callable[[], Awaitable[Any]]
    if transport == "grpc":
        os.environ["DAPR_HTTP_PORT"] = str(http_port)  # the SDK's health wait
        from dapr.aio.clients import DaprClient

        client = DaprClient(address=f"127.0.0.1:{grpc_port}")
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "get": lambda: client.get_state("memstore", "k"),
            "save": lambda: client.save_state("memstore", "k", VALUE),
            "publish": lambda: client.publish_event(
                "bus", "transport-cpu", VALUE, data_content_type="application/json"
            ),
        }
    else:
        import aiohttp

        session = aiohttp.ClientSession(skip_auto_headers=("User-Agent", "Accept"))
        base = f"http://127.0.0.1:{http_port}/v1.0"
        json_type = {"content-type": "application/json"}

        async def request(method: str, url: str, body: bytes | None = None) -> bytes:
            async with session.request(method, url, data=body, headers=json_type) as resp:
                return await resp.read()

        calls = {
            "get": lambda: request("GET", f"{base}/state/memstore/k"),
            "save": lambda: request(
                "POST", f"{base}/state/memstore", b'[{"key":"k","value":' + VALUE + b"}]"
            ),
            "publish": lambda: request("POST", f"{base}/publish/bus/transport-cpu", VALUE),
        }
    call = calls[op]
    for _ in range(WARM_UP):
        await call()
    started = time.process_time()
    for _ in range(n):
        await call()
    print(json.dumps({"cpu_us": (time.process_time() - started) / n * 1e6}))
    if transport == "grpc":
        await client.close()  # type: ignore[no-untyped-call]  # untyped SDK
    else:
        await session.close()


async def _main(n: int) -> None:
    from sidecar.runtime import SidecarOptions
    from sidecar.testing import make_cluster, start_sidecar

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in RESOURCES.items():
            (Path(tmp) / name).write_text(text)
        sidecar = await start_sidecar(
            SidecarOptions(app_id="transport-cpu", resources_paths=(Path(tmp),)),
            await make_cluster(),
        )
        print(f"CPU per call, n={n} (us)\n")
        print("| operation | transport | client | sidecar | both |\n|---|---|--:|--:|--:|")
        try:
            for op in OPERATIONS:
                for transport in ("grpc", "http"):
                    started = time.process_time()
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable, __file__, "--child", transport, op,
                        str(sidecar.http_port), str(sidecar.grpc_port), "--n", str(n),
                        stdout=asyncio.subprocess.PIPE,
                    )  # fmt: skip
                    out, _ = await proc.communicate()
                    if proc.returncode:
                        raise SystemExit(f"{transport} {op}: client failed")
                    client = json.loads(out.decode().splitlines()[-1])["cpu_us"]
                    side = (time.process_time() - started) / (n + WARM_UP) * 1e6
                    print(
                        f"| {op} | {transport} | {client:.0f} | {side:.0f} | {client + side:.0f} |"
                    )
        finally:
            await sidecar.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--child", nargs=4, metavar=("TRANSPORT", "OP", "HTTP_PORT", "GRPC_PORT"))
    args = ap.parse_args()
    # the apps and the local sidecar launcher run on uvloop when it is installed
    try:
        import uvloop

        run: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
    except ImportError:
        run = asyncio.run
    if args.child:
        transport, op, http_port, grpc_port = args.child
        run(_client(transport, op, int(http_port), int(grpc_port), args.n))
    else:
        run(_main(args.n))


if __name__ == "__main__":
    main()
