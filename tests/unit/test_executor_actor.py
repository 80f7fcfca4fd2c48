"""What an executor actor keeps between its calls. A host's actors stay in memory until
their sidecar deactivates them (``SUPERSTEP_ACTOR_IDLE_S`` after their run's last
superstep), one for each (run, executor) the host ran: whatever one keeps is kept once
for every run of those minutes (docs/reliability.md, "Load")."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any, cast

from dapr.actor.id import ActorId
from dapr.actor.runtime._type_information import ActorTypeInformation
from dapr.actor.runtime.context import ActorRuntimeContext

from executor_host._actors import (
    ExecutorActor,
    ExecutorDeps,
    RunInstances,
    executor_actor_class,
)
from executor_host._coordinator import RunDriver
from executor_host._payloads import PayloadCache
from executor_host._serializer import EnvelopeSerializer
from executor_host._store import RunStore
from executor_host.protocol import ActivationEnvelope, ResultEnvelope, executor_actor_id
from runtime.engine import compact_json_bytes
from runtime.registry import WorkflowRegistry
from runtime.testing.ports import InMemoryBus, InMemoryStateStore
from runtime.workflow.driver import new_run_state

TEXTS = ["x" * 1000] * 12
"""The input of a run of ``echo``: its relay sends it on, so the relay's result holds
these 12,000 characters (under the size that goes by reference, 16 KiB)."""


SERIALIZER = EnvelopeSerializer()


class Host:
    """One pool's executor actors over an in-memory store, as ``PoolHost`` makes them;
    the activations come from a coordinator over an in-memory bus."""

    def __init__(self) -> None:
        self.registry = WorkflowRegistry.load(["tests.dapr.workflows:echo"])
        self.store = RunStore(InMemoryStateStore(), "statestore")
        self.bus: InMemoryBus[ActivationEnvelope] = InMemoryBus()
        self.reported: list[bytes] = []
        """Each result reported to the coordinator, serialised (as ``ResultReporter``
        sends it: nothing of the actor's own objects is kept here)."""
        self.deps = ExecutorDeps(
            host_id="h1",
            store=self.store,
            registry=self.registry,
            instances=RunInstances(self.registry),
            report_result=self._report,
            payloads=PayloadCache(self.store.load_payload),
        )
        self.cls = executor_actor_class("default")
        self.ctx = ActorRuntimeContext(
            ActorTypeInformation.create(self.cls), SERIALIZER, SERIALIZER, cast(Any, None)
        )

    async def _report(self, env: ResultEnvelope) -> None:
        self.reported.append(compact_json_bytes(env.model_dump(mode="json")))

    async def first_activation(self, run_id: str) -> ActivationEnvelope:
        """Start a run of ``echo``: its relay's activation of superstep 1."""
        driver = RunDriver(run_id, self.store, self.registry.resolve, self.bus.publish)
        await driver.create("echo", new_run_state(self.registry.build("echo"), TEXTS, run_id, 0))
        (env,) = self.bus.take()
        return env

    def actor(self, env: ActivationEnvelope) -> ExecutorActor:
        actor_id = ActorId(executor_actor_id(env.run_id, env.executor_index))
        return self.cls(self.ctx, actor_id, self.deps)


def _delivered(env: ActivationEnvelope) -> dict[str, Any]:
    """The envelope as the actor gets it: decoded from the call's body."""
    return cast(dict[str, Any], SERIALIZER.deserialize(env.model_dump_json().encode(), dict))


async def held_by_each_actor() -> float:
    """Bytes an executor actor still holds after its call, averaged over 40 actors, each
    run's result 12 KB; run by the test below in an interpreter of its own."""
    host = Host()
    envs = [await host.first_activation(f"run-{i}") for i in range(40)]
    tracemalloc.start()
    try:
        actors = []
        for env in envs:
            actor = host.actor(env)
            assert await actor.execute(_delivered(env)) == {"duplicate": False}
            actors.append(actor)  # as the Dapr SDK keeps an activated actor
        gc.collect()
        with_actors = tracemalloc.get_traced_memory()[0]
        actors.clear()
        gc.collect()
        held_each = (with_actors - tracemalloc.get_traced_memory()[0]) / len(envs)
    finally:
        tracemalloc.stop()
    assert len(host.reported) == len(envs)
    assert all(len(body) > 12_000 for body in host.reported)
    return held_each


def test_an_executor_actor_keeps_no_result_after_its_call() -> None:
    """Actors left activated after their runs hold a few hundred bytes each, not their
    results (12 KB each here). Measured in a fresh interpreter: tracemalloc counts every
    thread's memory, and the suite's deployments (session fixtures) run in threads of
    this one, allocating and freeing while the test measures."""
    measure = f"import asyncio, {__name__} as t; print(asyncio.run(t.held_by_each_actor()))"
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-c", measure],
        cwd=root,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    held_each = float(done.stdout.split()[-1])
    assert held_each < 2048, f"an actor held {held_each:.0f} bytes after its call"


async def test_a_repeat_to_the_same_actor_is_answered_with_the_stored_result() -> None:
    """The actor ran the activation: the repeat reports the stored result again and
    runs nothing (a run of ``echo`` executes its relay once)."""
    host = Host()
    env = await host.first_activation("run-1")
    actor = host.actor(env)
    payload = _delivered(env)
    assert await actor.execute(payload) == {"duplicate": False}
    assert await actor.execute(payload) == {"duplicate": True}
    first, repeat = host.reported
    assert repeat == first
    stored = await host.store.load_result("run-1", env.generation, env.superstep, 0)
    assert stored is not None and stored["sent"][0]["data"] == TEXTS
