"""The multi-app launcher: read ``dapr.yaml``, start one sidecar per app, then the apps."""

from sidecar.launcher.processes import AppProcess, LogSink, stdout_sink
from sidecar.launcher.template import AppSpec, RunTemplate, load_template
from sidecar.launcher.topology import Topology

__all__ = [
    "AppProcess",
    "AppSpec",
    "LogSink",
    "RunTemplate",
    "Topology",
    "load_template",
    "stdout_sink",
]
