"""The public API is explicit: pin what each public package exports."""

from __future__ import annotations

import runtime
import runtime.checkpoint
import runtime.engine
import runtime.errors
import runtime.workflow


def test_top_level_exports_are_pinned() -> None:
    assert sorted(runtime.__all__) == [
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
        "StoreRefusedError",
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


def test_every_exported_name_exists() -> None:
    for module in (runtime, runtime.engine, runtime.workflow, runtime.checkpoint, runtime.errors):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name} is exported but missing"


def test_every_error_derives_from_superstep_error() -> None:
    for name in runtime.errors.__all__:
        cls = getattr(runtime.errors, name)
        assert issubclass(cls, runtime.errors.SuperstepError)


def test_runtime_package_imports_no_dapr_grpc_or_fastapi() -> None:
    import subprocess
    import sys

    code = (
        "import sys, runtime, runtime.engine, runtime.workflow, runtime.inprocess, "
        "runtime.checkpoint; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dapr', 'grpc', 'fastapi')]; "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
