"""The local sidecar's exception tree, in one place.

::

    LocalSidecarError            base of everything raised on purpose
    ├── ResourceError            bad component/subscription/resiliency YAML or run template;
    │                            raised at start-up, names the file and the field; never retryable
    ├── StateStoreError          a state store operation failed (retry may help)
    │   ├── ETagMismatch         the ETag did not match (Redis: any failed write carrying one)
    │   └── ETagInvalid          the ETag cannot be parsed by this store
    ├── BrokerError              a pub/sub component failed to publish (retry may help)
    ├── ApiError                 what an API call answers: HTTP status, gRPC code, ``errorCode``
    └── StartupError             an app or a sidecar failed to come up (the launcher exits non-zero)

The names are the local sidecar's own: ``executor_host`` has its ``SidecarError`` (a
call to a sidecar failed, a ``runtime.ports.PortError``, which its run store raises
too), and the ETag conflict is ``ETagMismatch`` here as in ``runtime.ports``.

``ApiError`` is the only error the HTTP and gRPC adapters translate; the services below them
turn store and broker errors into ``ApiError`` with the exact codes of the Dapr contract.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ApiError",
    "BrokerError",
    "ETagInvalid",
    "ETagMismatch",
    "LocalSidecarError",
    "ResourceError",
    "StartupError",
    "StateStoreError",
]


class LocalSidecarError(Exception):
    """Base class of every error the local sidecar raises on purpose."""


class ResourceError(LocalSidecarError):
    """A resource file or run template is invalid. Fix the file; retrying cannot help."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        super().__init__(f"{file}: {field}: {problem}")
        self.file = file
        self.field = field
        self.problem = problem


class StateStoreError(LocalSidecarError):
    """A state store operation failed for a reason other than concurrency."""


class ETagMismatch(StateStoreError):
    """The write carried an ETag that does not match the stored one."""


class ETagInvalid(StateStoreError):
    """The ETag is not in the format this store uses."""


class BrokerError(LocalSidecarError):
    """A pub/sub component could not accept a message."""


class StartupError(LocalSidecarError):
    """An app or sidecar did not come up; ``log_tail`` holds the app's last log lines."""

    def __init__(self, message: str, *, log_tail: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.log_tail = log_tail

    def __str__(self) -> str:
        # the app's last words are what tells why it did not come up
        message = super().__str__()
        if not self.log_tail:
            return message
        return message + "; its last log lines:\n" + "\n".join(self.log_tail[-20:])


class ApiError(LocalSidecarError):
    """An API answer that is an error: HTTP status, gRPC status name and Dapr ``errorCode``.

    ``grpc_code`` is the name of a ``grpc.StatusCode`` member (``"ABORTED"``), so the
    services stay independent of the transport.
    """

    def __init__(
        self,
        http_status: int,
        grpc_code: str,
        error_code: str,
        message: str,
        *,
        reason: str = "",
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.grpc_code = grpc_code
        self.error_code = error_code
        self.message = message
        self.reason = reason
        self.extra: dict[str, object] = dict(extra or {})

    def body(self) -> dict[str, object]:
        """The JSON error body daprd sends (``errorCode`` + ``message``, rich details if any)."""
        out: dict[str, object] = {"errorCode": self.error_code, "message": self.message}
        if self.reason:
            out["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": self.reason,
                    "domain": "dapr.io",
                    "metadata": {},
                }
            ]
        out.update(self.extra)
        return out
