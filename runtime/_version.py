"""The package version (one place; ``runtime.__version__`` and telemetry read it)."""

__version__ = "0.1.0"
