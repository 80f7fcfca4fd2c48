"""The Dapr-API-compatible local sidecar (a development and CI tool, not Dapr itself)."""
