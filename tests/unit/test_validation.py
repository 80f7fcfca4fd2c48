"""Build-time validation: one test per problem ``WorkflowBuilder.build()`` reports.

Every problem must name the executor or edge it is about and say how to fix it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Never

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import (
    Case,
    Default,
    Executor,
    ExecutorPolicy,
    OnFailure,
    Placement,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowValidationError,
    executor,
    handler,
    response_handler,
)
from runtime.workflow._validation import _cycles

# -- executors ------------------------------------------------------------------------------


class Ints(Executor):
    """Takes int, sends int."""

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message(x)


class Strs(Executor):
    """Takes str, sends nothing."""

    @handler
    async def on_str(self, x: str, ctx: WorkflowContext[Never]) -> None:
        pass


class IntSink(Executor):
    """Takes int, yields int, sends nothing."""

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[Never, int]) -> None:
        await ctx.yield_output(x)


class IntLoop(Executor):
    """Takes int, sends int, never yields."""

    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int, Never]) -> None:
        await ctx.send_message(x)


class IntList(Executor):
    @handler
    async def on_list(self, xs: list[int], ctx: WorkflowContext[Never, int]) -> None:
        await ctx.yield_output(sum(xs))


class StrList(Executor):
    @handler
    async def on_list(self, xs: list[str], ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output("".join(xs))


class Open(Executor):
    """Undeclared output types: sends anything."""

    @handler
    async def on_any(self, x: int, ctx: WorkflowContext) -> None:
        await ctx.send_message(x)


class NotAsync(Executor):
    @handler
    def on_int(self, x: int, ctx: WorkflowContext[int]) -> None:
        pass


class TooFewParams(Executor):
    @handler
    async def on_int(self, x: int) -> None:
        pass


class TooManyParams(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[int], extra: int) -> None:
        pass


class KeywordOnlyCtx(Executor):
    @handler
    async def on_int(self, x: int, *, ctx: WorkflowContext[int]) -> None:
        pass


class NoMessageType(Executor):
    @handler
    async def on_any(self, x, ctx: WorkflowContext[int]) -> None:  # type: ignore[no-untyped-def]
        pass


class NoCtxType(Executor):
    @handler
    async def on_int(self, x: int, ctx) -> None:  # type: ignore[no-untyped-def]
        pass


class CtxNotWorkflowContext(Executor):
    @handler
    async def on_int(self, x: int, ctx: dict[str, Any]) -> None:
        pass


class UnresolvableAnnotation(Executor):
    @handler
    async def on_int(self, x: DoesNotExist, ctx: WorkflowContext[int]) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass


class NoHandlers(Executor):
    async def helper(self, x: int, ctx: WorkflowContext[int]) -> None:
        pass


class BadResponseHandler(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[Never]) -> None:
        pass

    @response_handler
    async def on_answer(self, request: str, ctx: WorkflowContext[Never]) -> None:
        pass


class NotAsyncResponseHandler(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[Never]) -> None:
        pass

    @response_handler
    def on_answer(self, request: str, answer: int, ctx: WorkflowContext[Never]) -> None:
        pass


class UnannotatedResponseHandler(Executor):
    @handler
    async def on_int(self, x: int, ctx: WorkflowContext[Never]) -> None:
        pass

    @response_handler
    async def on_answer(self, request: str, answer, ctx: WorkflowContext[Never]) -> None:  # type: ignore[no-untyped-def]
        pass


def _problems(build: Callable[[], WorkflowBuilder]) -> list[str]:
    with pytest.raises(WorkflowValidationError) as info:
        build().build()
    return info.value.problems


def _one_problem(build: Callable[[], WorkflowBuilder]) -> str:
    problems = _problems(build)
    assert len(problems) == 1, problems
    return problems[0]


# -- a valid graph builds -------------------------------------------------------------------


def test_a_valid_graph_builds() -> None:
    s, t = Ints("s"), IntSink("t")
    wf = WorkflowBuilder(start_executor=s).add_edge(s, t).build()
    assert [n.id for n in wf.graph.executors] == ["s", "t"]


# -- duplicate executor ids -----------------------------------------------------------------


def test_duplicate_executor_ids() -> None:
    s, a1, a2 = Ints("s"), IntSink("a"), Strs("a")
    problems = _problems(lambda: WorkflowBuilder(start_executor=s).add_edge(s, a1).add_edge(a1, a2))
    text = problems[0]
    assert "duplicate executor id 'a'" in text
    assert "IntSink and Strs" in text
    assert "give each executor a unique id" in text


def test_the_same_executor_object_twice_is_fine() -> None:
    s, t, u = Ints("s"), Ints("t"), IntSink("u")
    WorkflowBuilder(start_executor=s).add_edge(s, t).add_edge(t, u).set_start_executor(s).build()


def test_empty_executor_id_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        Ints("")


# -- unknown executors ----------------------------------------------------------------------


def test_edge_naming_an_unknown_executor_by_id() -> None:
    s = Ints("s")
    text = _one_problem(lambda: WorkflowBuilder(start_executor=s).add_edge(s, "ghost"))
    assert "an edge names executor 'ghost'" in text
    assert "not in the workflow" in text
    assert "pass the executor object" in text


def test_naming_an_executor_by_id_after_adding_it_is_fine() -> None:
    s, t, u = Ints("s"), Ints("t"), IntSink("u")
    wf = WorkflowBuilder(start_executor=s).add_edge(s, t).add_edge("t", u).build()
    assert [n.id for n in wf.graph.executors] == ["s", "t", "u"]


def test_naming_an_executor_by_id_before_adding_it_is_fine_once_it_is_added() -> None:
    s, t, u = Ints("s"), Ints("t"), IntSink("u")
    wf = WorkflowBuilder(start_executor=s).add_edge("t", u).add_edge(s, t).build()
    assert [n.id for n in wf.graph.executors] == ["s", "u", "t"]


def test_every_unknown_id_is_reported() -> None:
    s = Ints("s")
    problems = _problems(lambda: WorkflowBuilder(start_executor=s).add_fan_out_edges(s, ["x", "y"]))
    assert [p.split("'")[1] for p in problems] == ["x", "y"]


def test_edge_with_something_that_is_not_an_executor_raises_at_once() -> None:
    with pytest.raises(TypeError, match="expected an Executor or an executor id"):
        WorkflowBuilder().add_edge(Ints("s"), 3)  # type: ignore[arg-type]


# -- reachability ---------------------------------------------------------------------------


def test_unreachable_executor() -> None:
    s, t, lost, lost_target = Ints("s"), IntSink("t"), Ints("lost"), IntSink("lt")
    problems = _problems(
        lambda: WorkflowBuilder(start_executor=s).add_edge(s, t).add_edge(lost, lost_target)
    )
    assert problems == [
        "executor 'lost' is unreachable from the start executor 's'; connect it with an edge "
        "or remove it",
        "executor 'lt' is unreachable from the start executor 's'; connect it with an edge "
        "or remove it",
    ]


def test_edge_into_the_start_executor_does_not_make_the_source_reachable() -> None:
    s, back = IntLoop("s"), Ints("back")
    text = _one_problem(lambda: WorkflowBuilder(start_executor=s).add_edge(back, s).add_edge(s, s))
    assert "executor 'back' is unreachable from the start executor 's'" in text


def test_fallback_executor_counts_as_reachable_from_its_executor() -> None:
    s, t, fb = Ints("s"), IntSink("t"), IntSink("fb")
    (
        WorkflowBuilder(start_executor=s)
        .add_edge(s, t)
        .set_policy(t, ExecutorPolicy(on_failure=OnFailure.FALLBACK, fallback="fb"))
        .set_placement(fb, Placement())  # adds fb to the workflow without an edge
        .build()
    )


def test_fallback_given_in_the_executors_own_policy_counts_as_reachable() -> None:
    s = Ints("s")
    t = IntSink("t", policy=ExecutorPolicy(on_failure=OnFailure.FALLBACK, fallback="fb"))
    fb, after = Ints("fb"), IntSink("after")
    WorkflowBuilder(start_executor=s).add_edge(s, t).add_edge(fb, after).build()


# -- message types along edges --------------------------------------------------------------


def test_message_type_no_target_handler_accepts() -> None:
    s, t = Ints("s"), Strs("t")
    problems = _problems(lambda: WorkflowBuilder(start_executor=s).add_edge(s, t))
    assert (
        "edge 's' -> 't': 's' sends int but 't' only handles str; add a handler for it or "
        "change the edge"
    ) in problems
    assert (
        "executor 's' sends int but no target of its edges handles it; add a handler for it "
        "downstream or stop sending it"
    ) in problems


def test_fan_out_target_that_handles_none_of_the_sent_types() -> None:
    s, ok, bad = Ints("s"), IntSink("ok"), Strs("bad")
    text = _one_problem(lambda: WorkflowBuilder(start_executor=s).add_fan_out_edges(s, [ok, bad]))
    assert "edge 's' -> 'bad'" in text
    assert "'s' sends int but 'bad' only handles str" in text


def test_declared_output_without_outgoing_edges() -> None:
    s = Ints("s")
    text = _one_problem(lambda: WorkflowBuilder(start_executor=s))
    assert "executor 's' declares it sends int but has no outgoing edges" in text
    assert "add an edge or declare WorkflowContext[Never, ...]" in text


def test_undeclared_output_types_are_not_checked() -> None:
    s, t = Open("s"), Strs("t")
    WorkflowBuilder(start_executor=s).add_edge(s, t).build()


def test_subtypes_and_unions_are_accepted() -> None:
    class Number(Executor):
        @handler
        async def on(self, x: float | str, ctx: WorkflowContext[Never, str]) -> None:
            pass

    s, t = Ints("s"), Number("t")
    WorkflowBuilder(start_executor=s).add_edge(s, t).build()


# -- fan-in ---------------------------------------------------------------------------------


def test_fan_in_target_that_does_not_accept_a_list() -> None:
    s, a, agg = Ints("s"), Ints("a"), IntSink("agg")
    problems = _problems(
        lambda: WorkflowBuilder(start_executor=s).add_edge(s, a).add_fan_in_edges([s, a], agg)
    )
    text = next(p for p in problems if "fan-in" in p)
    assert "fan-in group #1 (s, a -> agg)" in text
    assert "fan-in target 'agg' has no handler for a list" in text
    assert "add a handler taking list[int]" in text


def test_fan_in_target_without_list_handler_and_undeclared_sources() -> None:
    s, a, agg = Open("s"), Open("a"), IntSink("agg")
    text = _one_problem(
        lambda: WorkflowBuilder(start_executor=s).add_edge(s, a).add_fan_in_edges([s, a], agg)
    )
    assert "fan-in target 'agg' has no handler for a list; a fan-in delivers list[T]" in text


def test_fan_in_target_taking_a_list_of_another_type() -> None:
    s, a, agg = Ints("s"), Ints("a"), StrList("agg")
    problems = _problems(
        lambda: WorkflowBuilder(start_executor=s).add_edge(s, a).add_fan_in_edges([s, a], agg)
    )
    text = next(p for p in problems if "fan-in" in p)
    assert "fan-in target 'agg' handles list[str], not a list of what 's' sends (int)" in text
    assert "add a handler taking list[int]" in text


def test_fan_in_listing_a_source_twice() -> None:
    s, agg = Ints("s"), IntList("agg")
    text = _one_problem(lambda: WorkflowBuilder(start_executor=s).add_fan_in_edges([s, s], agg))
    assert "fan-in group #0 (s, s -> agg)" in text
    assert "lists the same source twice" in text
    assert "list each source once" in text


def test_valid_fan_in() -> None:
    s, a, agg = Ints("s"), Ints("a"), IntList("agg")
    WorkflowBuilder(start_executor=s).add_edge(s, a).add_fan_in_edges([s, a], agg).build()


# -- switch-case ----------------------------------------------------------------------------


@pytest.mark.parametrize("defaults", [0, 2])
def test_switch_case_needs_exactly_one_default(defaults: int) -> None:
    s, a, b = Ints("s"), IntSink("a"), IntSink("b")
    cases: list[Case | Default] = [Case(lambda v: v > 0, a)]
    cases += [Default(b)] * defaults
    if defaults == 0:
        cases.append(Case(lambda v: v <= 0, b))
    text = _one_problem(
        lambda: WorkflowBuilder(start_executor=s).add_switch_case_edge_group(s, cases)
    )
    assert text.startswith("switch-case group #0 (s -> ")
    assert f"needs exactly one Default branch, found {defaults}" in text
    assert "add Default(target=...) as the last branch" in text


def test_switch_case_with_one_default_builds_and_several_cases_may_share_a_target() -> None:
    s, a, b = Ints("s"), IntSink("a"), IntSink("b")
    WorkflowBuilder(start_executor=s).add_switch_case_edge_group(
        s, [Case(lambda v: v > 10, a), Case(lambda v: v > 0, a), Default(b)]
    ).build()


def test_switch_case_with_something_else_raises_at_once() -> None:
    with pytest.raises(TypeError, match="switch-case entries are Case or Default"):
        WorkflowBuilder().add_switch_case_edge_group(Ints("s"), [IntSink("a")])  # type: ignore[list-item]


# -- start executor -------------------------------------------------------------------------


def test_no_start_executor() -> None:
    s, t = Ints("s"), IntSink("t")
    problems = _problems(lambda: WorkflowBuilder().add_edge(s, t))
    assert problems == [
        "no start executor: pass WorkflowBuilder(start_executor=...) or call "
        "set_start_executor(...)"
    ]


def test_set_start_executor_puts_it_first_in_the_executor_order() -> None:
    s, t = Ints("s"), IntSink("t")
    wf = WorkflowBuilder().add_edge(s, t).set_start_executor(s).build()
    assert wf.graph.start == "s"
    assert wf.graph.executors[0].id == "s"


# -- handler signatures -----------------------------------------------------------------------


def _bad_handler_problem(ex: Executor) -> str:
    s = Open("s")
    return _one_problem(lambda: WorkflowBuilder(start_executor=s).add_edge(s, ex))


def test_handler_not_async() -> None:
    text = _bad_handler_problem(NotAsync("bad"))
    assert text.startswith("executor 'bad': NotAsync: ")
    assert "handler NotAsync.on_int must be 'async def'" in text


@pytest.mark.parametrize("cls", [TooFewParams, TooManyParams, KeywordOnlyCtx])
def test_handler_wrong_arity(cls: type[Executor]) -> None:
    text = _bad_handler_problem(cls("bad"))
    assert "'bad'" in text
    assert f"handler {cls.__qualname__}.on_int must take exactly (message, ctx) after self" in text


def test_handler_without_message_annotation() -> None:
    text = _bad_handler_problem(NoMessageType("bad"))
    assert "'bad'" in text
    assert "has no type for its message parameter 'x'" in text
    assert "annotate it or pass @handler(input=...)" in text


def test_handler_without_ctx_annotation() -> None:
    text = _bad_handler_problem(NoCtxType("bad"))
    assert "'bad'" in text
    assert "must annotate its context parameter 'ctx' as WorkflowContext" in text


def test_handler_ctx_not_a_workflow_context() -> None:
    text = _bad_handler_problem(CtxNotWorkflowContext("bad"))
    assert "'bad'" in text
    assert "must annotate its context parameter 'ctx' as WorkflowContext" in text


def test_handler_with_unresolvable_annotation() -> None:
    text = _bad_handler_problem(UnresolvableAnnotation("bad"))
    assert "'bad'" in text
    assert "cannot resolve the annotations of UnresolvableAnnotation.on_int" in text


def test_handler_input_given_explicitly_needs_no_annotation() -> None:
    class Explicit(Executor):
        @handler(input=int, output=int)
        async def on(self, x, ctx: WorkflowContext) -> None:  # type: ignore[no-untyped-def]
            pass

    s, t = Explicit("s"), IntSink("t")
    wf = WorkflowBuilder(start_executor=s).add_edge(s, t).build()
    assert wf.graph.nodes["s"].input_types == (int,)


def test_executor_without_handlers() -> None:
    text = _bad_handler_problem(NoHandlers("bad"))
    assert "executor 'bad' (NoHandlers) has no @handler methods" in text
    assert "@handler" in text


def test_response_handler_wrong_arity() -> None:
    text = _bad_handler_problem(BadResponseHandler("bad"))
    assert "'bad'" in text
    assert (
        "response handler BadResponseHandler.on_answer must take (original_request, response, ctx)"
        in text
    )


def test_response_handler_not_async() -> None:
    text = _bad_handler_problem(NotAsyncResponseHandler("bad"))
    assert "'bad'" in text
    assert "response handler NotAsyncResponseHandler.on_answer must be 'async def'" in text


def test_response_handler_without_annotations() -> None:
    text = _bad_handler_problem(UnannotatedResponseHandler("bad"))
    assert "'bad'" in text
    assert "must annotate original_request and response" in text


def test_function_executor_signatures() -> None:
    async def not_annotated(x, ctx):  # type: ignore[no-untyped-def]
        pass

    def not_async(x: int, ctx: WorkflowContext[int]) -> None:
        pass

    for func, expected in [
        (not_annotated, "has no type for its message parameter 'x'"),
        (not_async, "must be 'async def'"),
    ]:
        ex = executor(id="fn")(func)  # type: ignore[arg-type]
        text = _bad_handler_problem(ex)
        assert text.startswith("executor 'fn': function executor")
        assert expected in text


def test_valid_function_executor() -> None:
    @executor(id="double")
    async def double(x: int, ctx: WorkflowContext[Never, int]) -> None:
        await ctx.yield_output(2 * x)

    s = Ints("s")
    wf = WorkflowBuilder(start_executor=s).add_edge(s, double).build()
    assert wf.graph.nodes["double"].input_types == (int,)


# -- shared state ---------------------------------------------------------------------------


def test_reducer_for_an_undeclared_key() -> None:
    s = IntSink("s")
    text = _one_problem(
        lambda: WorkflowBuilder(start_executor=s).add_reducer("total", lambda a, b: a + b)
    )
    assert "a reducer is given for state key 'total', which is not declared" in text
    assert "add_state('total', initial=..., reducer=...)" in text


def test_reducer_for_a_declared_key_is_attached() -> None:
    s = IntSink("s")

    def add(a: int, b: int) -> int:
        return a + b

    wf = (
        WorkflowBuilder(start_executor=s)
        .add_state("total", initial=0)
        .add_reducer("total", add)
        .build()
    )
    assert wf.graph.state_keys["total"].reducer is add
    assert wf.graph.state_keys["total"].initial == 0


# -- placement ------------------------------------------------------------------------------


def test_conflicting_placement() -> None:
    s = IntSink("s", placement=Placement("gpu"))
    text = _one_problem(
        lambda: WorkflowBuilder(start_executor=s).set_placement(s, Placement("cpu", {"zone": "eu"}))
    )
    assert "conflicting placement for executor 's'" in text
    assert "pool='gpu'" in text and "pool='cpu'" in text and "'zone': 'eu'" in text
    assert "give it one placement" in text


def test_repeating_the_same_placement_is_fine() -> None:
    s = IntSink("s", placement=Placement("gpu", {"a": "1"}))
    wf = WorkflowBuilder(start_executor=s).set_placement(s, Placement("gpu", {"a": "1"})).build()
    assert wf.graph.nodes["s"].placement.pool == "gpu"


# -- cycles ---------------------------------------------------------------------------------


def test_cycle_without_exit_when_unbounded() -> None:
    s, a, b = IntLoop("s"), IntLoop("a"), IntLoop("b")
    text = _one_problem(
        lambda: (
            WorkflowBuilder(start_executor=s, max_supersteps=None)
            .add_edge(s, a)
            .add_edge(a, b)
            .add_edge(b, a)
        )
    )
    assert text.startswith("cycle a -> b -> a has no exit")
    assert "Add a condition to an edge of the cycle or set max_supersteps" in text


def test_self_loop_without_exit_when_unbounded() -> None:
    s = IntLoop("s")
    text = _one_problem(
        lambda: WorkflowBuilder(start_executor=s, max_supersteps=None).add_edge(s, s)
    )
    assert text.startswith("cycle s -> s has no exit")


def test_the_same_cycle_is_valid_when_bounded() -> None:
    s, a = IntLoop("s"), IntLoop("a")
    WorkflowBuilder(start_executor=s, max_supersteps=10).add_edge(s, a).add_edge(a, s).build()


def test_cycle_with_a_conditional_edge_is_valid_when_unbounded() -> None:
    s, a = IntLoop("s"), IntLoop("a")
    WorkflowBuilder(start_executor=s, max_supersteps=None).add_edge(s, a).add_edge(
        a, s, lambda v: v < 10
    ).build()


def test_cycle_with_a_switch_case_is_valid_when_unbounded() -> None:
    s, a, b = IntLoop("s"), IntLoop("a"), IntLoop("b")
    WorkflowBuilder(start_executor=s, max_supersteps=None).add_edge(
        s, a
    ).add_switch_case_edge_group(a, [Case(lambda v: v < 10, s), Default(b)]).add_edge(b, a).build()


def test_cycle_with_an_edge_leaving_it_is_valid_when_unbounded() -> None:
    s, a, out = IntLoop("s"), Ints("a"), IntSink("out")
    WorkflowBuilder(start_executor=s, max_supersteps=None).add_edge(s, a).add_edge(a, s).add_edge(
        a, out
    ).build()


def test_cycle_with_a_yielding_executor_is_valid_when_unbounded() -> None:
    class LoopYield(Executor):
        @handler
        async def on(self, x: int, ctx: WorkflowContext[int, int]) -> None:
            pass

    s, a = IntLoop("s"), LoopYield("a")
    WorkflowBuilder(start_executor=s, max_supersteps=None).add_edge(s, a).add_edge(a, s).build()


def test_max_supersteps_must_be_positive() -> None:
    s = IntSink("s")
    text = _one_problem(lambda: WorkflowBuilder(start_executor=s, max_supersteps=0))
    assert "max_supersteps must be at least 1 (or None), got 0" in text


def test_max_iterations_is_an_alias_of_max_supersteps() -> None:
    s = IntSink("s")
    wf = WorkflowBuilder(start_executor=s, max_iterations=7).build()
    assert wf.graph.max_supersteps == 7


# -- duplicate edges ------------------------------------------------------------------------


def test_duplicate_edges() -> None:
    s, t = Ints("s"), IntSink("t")
    text = _one_problem(lambda: WorkflowBuilder(start_executor=s).add_edge(s, t).add_edge(s, t))
    assert "duplicate edge 's' -> 't' (edge groups #0 and #1)" in text
    assert "Keep one edge per (source, target)" in text


def test_edge_duplicating_a_fan_out_target() -> None:
    s, a, b = Ints("s"), IntSink("a"), IntSink("b")
    text = _one_problem(
        lambda: WorkflowBuilder(start_executor=s).add_fan_out_edges(s, [a, b]).add_edge(s, b)
    )
    assert "duplicate edge 's' -> 'b' (edge groups #0 and #1)" in text


def test_fan_out_listing_a_target_twice() -> None:
    s, a = Ints("s"), IntSink("a")
    text = _one_problem(lambda: WorkflowBuilder(start_executor=s).add_fan_out_edges(s, [a, a]))
    assert "fan-out group #0 (s -> a, a)" in text
    assert "the same target is listed twice" in text
    assert "list each target once" in text


# -- failure policies -----------------------------------------------------------------------


def test_fallback_naming_an_unknown_executor() -> None:
    s, t = Ints("s"), IntSink("t")
    text = _one_problem(
        lambda: (
            WorkflowBuilder(start_executor=s)
            .add_edge(s, t)
            .set_policy(t, ExecutorPolicy(on_failure=OnFailure.FALLBACK, fallback="nobody"))
        )
    )
    assert "executor 't': on_failure='fallback' names fallback 'nobody'" in text
    assert "not an executor of this workflow" in text
    assert "add that executor to the workflow" in text


def test_fallback_policy_without_a_fallback() -> None:
    s, t = Ints("s"), IntSink("t")
    text = _one_problem(
        lambda: (
            WorkflowBuilder(start_executor=s)
            .add_edge(s, t)
            .set_policy(t, ExecutorPolicy(on_failure=OnFailure.FALLBACK))
        )
    )
    assert "executor 't': on_failure='fallback' names fallback None" in text


def test_fallback_that_cannot_handle_the_executors_messages() -> None:
    s, t, fb = Ints("s"), IntSink("t"), Strs("fb")
    text = _one_problem(
        lambda: (
            WorkflowBuilder(start_executor=s)
            .add_edge(s, t)
            .set_placement(fb, Placement())
            .set_policy(t, ExecutorPolicy(on_failure=OnFailure.FALLBACK, fallback="fb"))
        )
    )
    assert "executor 't': its fallback 'fb' handles str, not everything 't' receives (int)" in text
    assert "give 'fb' a handler for each of them or pick another fallback" in text


def test_fallback_to_itself() -> None:
    s, t = Ints("s"), IntSink("t")
    text = _one_problem(
        lambda: (
            WorkflowBuilder(start_executor=s)
            .add_edge(s, t)
            .set_policy(t, ExecutorPolicy(on_failure=OnFailure.FALLBACK, fallback="t"))
        )
    )
    assert "executor 't': on_failure='fallback' names 't' as its own fallback" in text
    assert "name another executor or use on_failure='skip'" in text


def test_fallback_given_without_on_failure_fallback() -> None:
    s, t, fb = Ints("s"), IntSink("t"), IntSink("fb")
    problems = _problems(
        lambda: (
            WorkflowBuilder(start_executor=s)
            .add_edge(s, t)
            .add_edge(s, fb)
            .set_policy(t, ExecutorPolicy(on_failure=OnFailure.SKIP, fallback="fb"))
        )
    )
    assert problems == [
        "executor 't': fallback 'fb' is given but on_failure='skip', so it would never be "
        "used; set on_failure=OnFailure.FALLBACK or drop the fallback"
    ]


def test_max_attempts_below_one() -> None:
    s = IntSink("s", policy=ExecutorPolicy(max_attempts=0))
    text = _one_problem(lambda: WorkflowBuilder(start_executor=s))
    assert text == "executor 's': max_attempts must be at least 1"


def test_valid_fallback_policy_is_recorded_in_the_graph() -> None:
    s, t, fb = Ints("s"), IntSink("t"), IntSink("fb")
    policy = ExecutorPolicy(max_attempts=3, on_failure=OnFailure.FALLBACK, fallback="fb")
    wf = (
        WorkflowBuilder(start_executor=s)
        .add_edge(s, t)
        .set_placement(fb, Placement())
        .set_policy(t, policy)
        .build()
    )
    assert wf.graph.nodes["t"].policy == policy


# -- codec registration -----------------------------------------------------------------------


def test_two_message_classes_with_one_codec_name() -> None:
    def make() -> type:
        @dataclasses.dataclass
        class Msg:
            v: int

        return Msg

    m1, m2 = make(), make()

    @executor(id="s", input=m1, output=m2)
    async def s(x: Any, ctx: WorkflowContext) -> None:
        pass

    @executor(id="t", input=m2, output=Never)
    async def t(x: Any, ctx: WorkflowContext) -> None:
        pass

    text = _one_problem(lambda: WorkflowBuilder(start_executor=s).add_edge(s, t))
    assert "two different classes share the codec name" in text
    assert "Msg" in text


# -- several problems at once ---------------------------------------------------------------------


def test_several_problems_are_reported_together() -> None:
    s, t1, t2, bad = Ints("s"), IntSink("t"), Strs("t"), NotAsync("bad")
    lost = IntSink("lost")
    builder = (
        WorkflowBuilder(start_executor=s)
        .add_edge(s, t1)
        .add_edge(s, t2)
        .add_edge(s, bad)
        .add_switch_case_edge_group(s, [Case(lambda v: True, lost)])
        .add_reducer("nope", lambda a, b: b)
    )
    with pytest.raises(WorkflowValidationError) as info:
        builder.build()
    problems = info.value.problems
    joined = "\n".join(problems)
    assert "duplicate executor id 't'" in joined
    assert "handler NotAsync.on_int must be 'async def'" in joined
    assert "state key 'nope'" in joined
    assert "needs exactly one Default branch, found 0" in joined
    assert len(problems) >= 4
    text = str(info.value)
    assert text.startswith(f"{len(problems)} problems:\n- ")
    assert all(f"- {p}" in text for p in problems)


def test_a_single_problem_is_the_whole_message() -> None:
    with pytest.raises(WorkflowValidationError) as info:
        WorkflowBuilder(start_executor=IntSink("s"), max_supersteps=0).build()
    assert str(info.value) == info.value.problems[0]
    assert isinstance(info.value, ValueError)


# -- cycle detection (property) ------------------------------------------------------------------


def _sccs_by_reachability(order: list[str], succ: dict[str, set[str]]) -> set[frozenset[str]]:
    reach: dict[str, set[str]] = {}
    for n in order:
        seen: set[str] = set()
        stack = [n]
        while stack:
            for y in succ[stack.pop()]:
                if y not in seen:
                    seen.add(y)
                    stack.append(y)
        reach[n] = seen
    out: set[frozenset[str]] = set()
    for n in order:
        comp = frozenset({m for m in order if m in reach[n] and n in reach[m]} | {n})
        if len(comp) > 1 or n in succ[n]:
            out.add(comp)
    return out


@given(
    st.integers(1, 7).flatmap(
        lambda n: st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=14
        ).map(lambda edges: (n, edges))
    )
)
def test_cycle_detection_finds_exactly_the_cyclic_components(
    graph: tuple[int, list[tuple[int, int]]],
) -> None:
    n, edges = graph
    order = [f"e{i}" for i in range(n)]
    succ: dict[str, set[str]] = {e: set() for e in order}
    for a, b in edges:
        succ[order[a]].add(order[b])
    assert {frozenset(c) for c in _cycles(order, succ)} == _sccs_by_reachability(order, succ)
