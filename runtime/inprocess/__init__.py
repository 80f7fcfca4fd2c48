"""The in-process runtime: drives the engine core with asyncio in one process."""

from runtime.inprocess._runtime import InProcessRuntime

__all__ = ["InProcessRuntime"]
