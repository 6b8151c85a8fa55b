"""The installed package version (a module of its own so that any module can import it cheaply)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rnnlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
