"""HTTP service over the basis store: lookups, encodings and batch export.

A thin layer: every number it returns comes from :mod:`basisdb`.  Start it with
``basisdb serve --store PATH`` or ``uvicorn basisdb.service.app:app``.
"""

from .app import create_app
from .config import ServiceSettings

__all__ = ["create_app", "ServiceSettings"]
