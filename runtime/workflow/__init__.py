"""The authoring API: executors, handlers, the context, the builder, the workflow."""

from runtime.workflow._builder import DEFAULT_MAX_SUPERSTEPS, Case, Default, WorkflowBuilder
from runtime.workflow._context import WorkflowContext
from runtime.workflow._events import RESERVED_EVENT_TYPES, RequestInfo, WorkflowEvent
from runtime.workflow._execute import execute_activation
from runtime.workflow._executor import (
    Executor,
    FunctionExecutor,
    executor,
    handler,
    response_handler,
)
from runtime.workflow._factory import is_workflow_factory, workflow_factory
from runtime.workflow._plain import (
    input_from_json,
    input_schema,
    plain_event,
    plain_json,
    plain_request,
    plain_value,
    response_from_json,
)
from runtime.workflow._run import NO_INPUT, RunRequest, RunResult, RunStream, Runtime
from runtime.workflow._subworkflow import WorkflowExecutor
from runtime.workflow._workflow import Workflow

__all__ = [
    "DEFAULT_MAX_SUPERSTEPS",
    "NO_INPUT",
    "RESERVED_EVENT_TYPES",
    "Case",
    "Default",
    "Executor",
    "FunctionExecutor",
    "RequestInfo",
    "RunRequest",
    "RunResult",
    "RunStream",
    "Runtime",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowContext",
    "WorkflowEvent",
    "WorkflowExecutor",
    "execute_activation",
    "executor",
    "handler",
    "input_from_json",
    "input_schema",
    "is_workflow_factory",
    "plain_event",
    "plain_json",
    "plain_request",
    "plain_value",
    "response_from_json",
    "response_handler",
    "workflow_factory",
]
