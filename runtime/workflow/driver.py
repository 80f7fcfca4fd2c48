"""What a runtime driver needs from the workflow layer, in one public place.

A driver (the in-process runtime, the Dapr coordinator and executor hosts, the HTTP
client) runs workflows written with ``runtime.workflow``: it prepares the run state a
run starts from, runs the barrier sequence (``BarrierMachine``) and executes
activations (``execute_activation``), and turns events to and from JSON. Drivers
import these names from here, never from the workflow package's private modules.
"""

from runtime.workflow._events import RequestInfo, WorkflowEvent
from runtime.workflow._execute import execute_activation
from runtime.workflow._machine import BarrierMachine, Command, Commit, Dispatch, Wait
from runtime.workflow._prepare import apply_responses, load_checkpoint, new_run_state
from runtime.workflow._reporting import (
    event_from_json,
    event_to_json,
    final_events,
    superstep_events,
)
from runtime.workflow._run import (
    NO_INPUT,
    Emit,
    RunRequest,
    RunResult,
    RunStream,
    set_default_runtime,
)
from runtime.workflow._workflow import Workflow

__all__ = [
    "NO_INPUT",
    "BarrierMachine",
    "Command",
    "Commit",
    "Dispatch",
    "Emit",
    "RequestInfo",
    "RunRequest",
    "RunResult",
    "RunStream",
    "Wait",
    "Workflow",
    "WorkflowEvent",
    "apply_responses",
    "event_from_json",
    "event_to_json",
    "execute_activation",
    "final_events",
    "load_checkpoint",
    "new_run_state",
    "set_default_runtime",
    "superstep_events",
]
