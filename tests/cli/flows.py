"""Workflows the CLI tests load by ``module:attr``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Never

from runtime import (
    Executor,
    ExecutorPolicy,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    handler,
    response_handler,
)


@dataclass(frozen=True)
class Greeting:
    name: str
    times: int = 1


class Greeter(Executor):
    @handler
    async def on_greeting(self, g: Greeting, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(" ".join([f"hello {g.name}"] * g.times))


class Shout(Executor):
    @handler
    async def on_text(self, text: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(text.upper())


def greeting() -> Workflow:
    """greeter -> shout: completes with one output."""
    g, s = Greeter("greeter"), Shout("shout")
    return WorkflowBuilder(start_executor=g).add_edge(g, s).build()


def counter() -> Workflow:
    """Takes an int and yields it doubled (the input is a plain JSON value)."""

    class Double(Executor):
        @handler
        async def on_int(self, x: int, ctx: WorkflowContext[Never, int]) -> None:
            await ctx.yield_output(2 * x)

    return WorkflowBuilder(start_executor=Double("double")).build()


class Boom(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[Never]) -> None:
        raise RuntimeError(f"boom on {x}")


def failing() -> Workflow:
    return WorkflowBuilder(start_executor=Boom("boom")).build()


class Declined(Exception):
    pass


class Charge(Executor):
    """Declined on every attempt, each time with another reason."""

    def __init__(self, id: str) -> None:
        super().__init__(id, policy=ExecutorPolicy(max_attempts=2))
        self.attempts = 0

    @handler
    async def on_amount(self, amount: int, ctx: WorkflowContext[Never]) -> None:
        self.attempts += 1
        raise Declined(f"{amount} declined (attempt {self.attempts})")


def charging() -> Workflow:
    """``charge`` fails both of its attempts with ``Declined``."""
    return WorkflowBuilder(start_executor=Charge("charge")).build()


@dataclass(frozen=True)
class Approval:
    amount: int


class Approver(Executor):
    @handler
    async def on_amount(self, amount: int, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.request_info(Approval(amount), bool)

    @response_handler
    async def on_answer(
        self, request: Approval, approved: bool, ctx: WorkflowContext[Never, str]
    ) -> None:
        await ctx.yield_output(f"{request.amount}: {'approved' if approved else 'rejected'}")


def approval() -> Workflow:
    """Asks a human whether to approve the amount it gets."""
    return WorkflowBuilder(start_executor=Approver("approver")).build()


@dataclass(frozen=True)
class Decision:
    approved: bool
    note: str = ""


class Reviewer(Executor):
    @handler
    async def on_amount(self, amount: int, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.request_info(Approval(amount), Decision)

    @response_handler
    async def on_answer(
        self, request: Approval, decision: Decision, ctx: WorkflowContext[Never, str]
    ) -> None:
        verdict = "approved" if decision.approved else "rejected"
        await ctx.yield_output(f"{request.amount}: {verdict} ({decision.note})")


def review() -> Workflow:
    """Asks a human for a ``Decision`` (a dataclass) on the amount it gets."""
    return WorkflowBuilder(start_executor=Reviewer("reviewer")).build()


def invalid() -> Workflow:
    """Two executors with one id: WorkflowBuilder.build() refuses it."""
    a, b = Shout("same"), Shout("same")
    return WorkflowBuilder(start_executor=a).add_edge(a, b).build()


def needs_arguments(n: int) -> Workflow:
    raise AssertionError("never called: the CLI calls factories without arguments")


NOT_A_WORKFLOW = 42

workflow = greeting()
"""A module-level Workflow object (not a factory)."""
