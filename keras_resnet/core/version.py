"""The installed distribution's version (``keras-resnets``), for metadata and ``--version``."""

from __future__ import annotations

import importlib.metadata

try:
    VERSION = importlib.metadata.version("keras-resnets")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0+unknown"
