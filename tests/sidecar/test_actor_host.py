"""The actor host's deactivations: an app known to be gone is not called (the sidecar
stops, or a health probe fails, after its app exited), one that is up gets the
``DELETE /actors/<type>/<id>`` of dapr-contract §4.2. Pure: a recording app channel,
no sidecar, so it passes on either target."""

from __future__ import annotations

from collections.abc import Mapping

from sidecar.actors.config import ActorConfig, TypeConfig
from sidecar.actors.host import ActorHost
from sidecar.app_channel import AppChannel, AppResponse


class RecordingChannel(AppChannel):
    def __init__(self) -> None:
        super().__init__("app", "127.0.0.1", 1)
        self.calls: list[tuple[str, str]] = []

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        query: str = "",
        timeout_s: float | None = None,
    ) -> AppResponse:
        self.calls.append((method, path))
        return AppResponse(200, {}, b"{}")


async def _host_with_one_actor() -> tuple[ActorHost, RecordingChannel]:
    channel = RecordingChannel()
    host = ActorHost("app@1", "app", channel, ActorConfig({"Counter": TypeConfig()}))
    await host.rebalance(lambda _type, _id: "app@1")
    await host.invoke("Counter", "c1", "Add", body=b"1", headers={})
    assert host.is_active("Counter", "c1")
    return host, channel


async def test_closing_deactivates_through_the_app_while_it_is_up() -> None:
    host, channel = await _host_with_one_actor()
    await host.close()
    assert channel.calls == [
        ("PUT", "/actors/Counter/c1/method/Add"),
        ("DELETE", "/actors/Counter/c1"),
    ]
    assert not host.is_active("Counter", "c1")


async def test_an_app_known_to_be_gone_is_not_called_when_its_actors_go() -> None:
    host, channel = await _host_with_one_actor()
    host.app_reachable = False
    await host.rebalance(lambda _type, _id: "elsewhere@2")  # the actor moves away
    await host.close()
    assert channel.calls == [("PUT", "/actors/Counter/c1/method/Add")]
    assert not host.is_active("Counter", "c1")
