"""Service settings, from the environment (``BASISDB_SERVICE_*``) or the command line."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    """Configuration of one service process.

    Every field can be set as an environment variable with the prefix ``BASISDB_SERVICE_``,
    for example ``BASISDB_SERVICE_STORE=/data/store.h5``.
    """

    model_config = SettingsConfigDict(env_prefix="BASISDB_SERVICE_", frozen=True)

    store: Path | None = Field(None, description="store file; None opens the default store, built on first use")
    host: str = Field("127.0.0.1", description="interface to bind")
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, description="server processes")
    max_positions: int = Field(100_000, ge=1, description="most positions (or atoms) in one request; more gets 413")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="largest request body; more gets 413")
    max_export_settings: int = Field(530, ge=1, description="most settings in one export")
    basis_cache_size: int = Field(1024, ge=0, description="rendered (setting, radius, format) responses kept")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS; empty turns CORS off")
