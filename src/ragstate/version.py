"""The installed distribution's version (below every layer: the façade, the CLI and the server report it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ragstate")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
