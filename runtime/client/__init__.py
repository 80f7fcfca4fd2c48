"""Run workflows on a remote runtime (the Dapr runtime's HTTP API) from Python.

``await workflow.run(input, runtime=RemoteRuntime("http://localhost:8300"))``
runs the very same workflow object remotely, streams the same events and
returns the same ``RunResult`` as in-process. No Dapr import: plain HTTP.
"""

from runtime.client._remote import RemoteRuntime

__all__ = ["RemoteRuntime"]
