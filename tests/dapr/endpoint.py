"""What a test's client needs of a local deployment of the API app: its URL, the headers
that carry the deployment's API token, and a ``RemoteRuntime`` on it."""

from __future__ import annotations

from typing import Any

from runtime.client import RemoteRuntime


class ApiEndpoint:
    """Mixed into a deployment holding ``local`` (a started deployment, with its
    ``api_url``; subclasses declare its type) and ``api_token`` (the token its API app
    wants)."""

    local: Any
    api_token: str

    @property
    def url(self) -> str:
        url: str = self.local.api_url
        return url

    @property
    def headers(self) -> dict[str, str]:
        """What a client sends: these deployments require an API token."""
        return {"Authorization": f"Bearer {self.api_token}"}

    def runtime(self) -> RemoteRuntime:
        return RemoteRuntime(self.url, token=self.api_token)
