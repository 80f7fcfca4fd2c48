"""A subscriber app for the pub/sub contract tests (FastAPI + the SDK's ``DaprApp``).

Every delivery is recorded and answered as the event's ``data.script`` says, one entry
per attempt (the last one repeats): ``success``, ``retry``, ``drop``, ``404``, ``500``,
``empty`` (200, no body), ``lowercase`` (200 ``{"status": "success"}``, an unknown
status). Tests read the record over HTTP (``GET /deliveries?tag=``), so the same tests
run when this app is started by ``dapr run`` next to a real daprd:

    uvicorn --factory tests.sidecar.apps.recorder:app_from_env --port 8101
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from dapr.ext.fastapi import DaprApp
from fastapi import FastAPI, Request, Response

__all__ = ["app_from_env", "build_app", "topic"]

ANSWERS: dict[str, tuple[int, bytes]] = {
    "success": (200, b'{"status":"SUCCESS"}'),
    "retry": (200, b'{"status":"RETRY"}'),
    "drop": (200, b'{"status":"DROP"}'),
    "404": (404, b"not here"),
    "500": (500, b"boom"),
    "empty": (200, b""),
    "lowercase": (200, b'{"status":"success"}'),
}


def topic(run_id: str, name: str) -> str:
    return f"sstest-{run_id}-{name}"


def build_app(run_id: str, name: str, pubsub: str = "redisbus") -> FastAPI:
    app = FastAPI()
    dapr = DaprApp(app)
    deliveries: list[dict[str, Any]] = []
    attempts: dict[tuple[str, str], int] = {}

    async def record(request: Request) -> Response:
        raw = await request.body()
        try:
            event = json.loads(raw)
        except ValueError:
            event = {"unparsed": raw.decode(errors="replace")}
        data = event.get("data") if isinstance(event, dict) else None
        script = ["success"]
        tag = ""
        if isinstance(data, dict):
            script = list(data.get("script") or script)
            tag = str(data.get("tag", ""))
            if data.get("sleep"):
                await asyncio.sleep(float(data["sleep"]))
        slot = (str(event.get("id", "")), request.url.path)
        n = attempts.get(slot, 0)
        attempts[slot] = n + 1
        deliveries.append(
            {
                "app": name,
                "path": request.url.path,
                "tag": tag,
                "attempt": n + 1,
                "event": event,
                "headers": dict(request.headers),
            }
        )
        status, body = ANSWERS[script[min(n, len(script) - 1)]]
        return Response(body, status, media_type="application/json" if body else None)

    # Programmatic subscriptions through the SDK decorator (v1 shape: route + DLQ).
    dapr.subscribe(pubsub, topic(run_id, "orders"), route="/orders")(record)
    dapr.subscribe(
        pubsub, topic(run_id, "poison"), route="/poison", dead_letter_topic=topic(run_id, "dlq")
    )(record)
    dapr.subscribe(pubsub, topic(run_id, "dlq"), route="/dlq")(record)
    dapr.subscribe(pubsub, topic(run_id, "raw"), route="/raw", metadata={"rawPayload": "true"})(
        record
    )
    dapr.subscribe("membus", topic(run_id, "mem"), route="/mem")(record)
    for path in ("/routed/a", "/routed/b", "/routed/default"):
        app.add_api_route(path, record, methods=["POST"])

    @app.get("/deliveries")
    async def list_deliveries(tag: str = "") -> list[dict[str, Any]]:
        return [d for d in deliveries if not tag or d["tag"] == tag]

    return app


def app_from_env() -> FastAPI:
    """``SIDECAR_TEST_RUN`` (the run id in topic names), ``APP_ID`` (the recorder's name)
    and ``SIDECAR_TEST_PUBSUB`` (the pub/sub of the main subscriptions, ``redisbus``)."""
    return build_app(
        os.environ["SIDECAR_TEST_RUN"],
        os.environ.get("APP_ID", "recorder"),
        os.environ.get("SIDECAR_TEST_PUBSUB", "redisbus"),
    )
