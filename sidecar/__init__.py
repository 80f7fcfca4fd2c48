"""The Dapr-API-compatible local sidecar: a development and CI tool, not Dapr itself.

See ``docs/sidecar.md``. Entry points: ``python -m sidecar run -f dapr.yaml``,
:class:`Topology` (start/stop a run from code), :class:`Sidecar` (one sidecar),
:class:`FaultPlan` (seeded fault injection), and the errors in :mod:`sidecar.errors`.
"""

from sidecar.cluster import Cluster
from sidecar.errors import (
    ApiError,
    BrokerError,
    ETagInvalid,
    ETagMismatch,
    LocalSidecarError,
    ResourceError,
    StartupError,
    StateStoreError,
)
from sidecar.faults import FaultPlan, PubSubFaults, StateFaults
from sidecar.launcher import AppSpec, RunTemplate, Topology, load_template
from sidecar.runtime import Sidecar, SidecarOptions

__all__ = [
    "ApiError",
    "AppSpec",
    "BrokerError",
    "Cluster",
    "ETagInvalid",
    "ETagMismatch",
    "FaultPlan",
    "LocalSidecarError",
    "PubSubFaults",
    "ResourceError",
    "RunTemplate",
    "Sidecar",
    "SidecarOptions",
    "StartupError",
    "StateFaults",
    "StateStoreError",
    "Topology",
    "load_template",
]
