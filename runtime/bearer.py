"""The ``Authorization: Bearer <token>`` check the APIs share: the Dapr runtime's API
app (``executor_host``) and the in-process console (``runtime.console``)."""

from __future__ import annotations

import hmac

__all__ = ["bearer_credentials", "bearer_matches"]


def bearer_credentials(value: bytes | None) -> bytes | None:
    """The credentials of an ``Authorization`` header value of the Bearer scheme (the
    scheme in any case, RFC 7235), else None."""
    if value is None:
        return None
    scheme, _, credentials = value.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return credentials.strip(b" ")


def bearer_matches(value: bytes | None, token: bytes) -> bool:
    """Whether the header value carries ``token``, compared in constant time."""
    presented = bearer_credentials(value)
    return presented is not None and hmac.compare_digest(presented, token)
