"""superstep: agent workflows in bulk-synchronous supersteps, in-process or on Dapr.

The authoring API follows Microsoft agent-framework's workflows, so moving over
is mostly a change of imports (docs/migrating-from-agent-framework.md).
"""

from runtime._version import __version__
from runtime.checkpoint import (
    CheckpointInfo,
    CheckpointStorage,
    FileCheckpointStorage,
    InMemoryCheckpointStorage,
)
from runtime.engine import Checkpoint, ExecutorPolicy, OnFailure, Placement, RunStatus
from runtime.errors import (
    CheckpointError,
    CodecError,
    ConvergenceError,
    ExecutorFailedError,
    NoLiveHostError,
    RequestError,
    RunCancelledError,
    RunError,
    StalledError,
    StateConflictError,
    SuperstepError,
    UndeliverableMessageError,
    WorkflowValidationError,
)
from runtime.inprocess import InProcessRuntime
from runtime.workflow import (
    Case,
    Default,
    Executor,
    FunctionExecutor,
    RequestInfo,
    RunResult,
    RunStream,
    Runtime,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEvent,
    WorkflowExecutor,
    executor,
    handler,
    response_handler,
    workflow_factory,
)

__all__ = [
    "Case",
    "Checkpoint",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointStorage",
    "CodecError",
    "ConvergenceError",
    "Default",
    "Executor",
    "ExecutorFailedError",
    "ExecutorPolicy",
    "FileCheckpointStorage",
    "FunctionExecutor",
    "InMemoryCheckpointStorage",
    "InProcessRuntime",
    "NoLiveHostError",
    "OnFailure",
    "Placement",
    "RequestError",
    "RequestInfo",
    "RunCancelledError",
    "RunError",
    "RunResult",
    "RunStatus",
    "RunStream",
    "Runtime",
    "StalledError",
    "StateConflictError",
    "SuperstepError",
    "UndeliverableMessageError",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowContext",
    "WorkflowEvent",
    "WorkflowExecutor",
    "WorkflowValidationError",
    "__version__",
    "executor",
    "handler",
    "response_handler",
    "workflow_factory",
]
