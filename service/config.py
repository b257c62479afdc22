"""Service settings, from the environment (``BASISDB_SERVICE_*``) or the command line.

Every limit bounds the work or the answer of a request before the work is done; the README's
"Promises" section lists them with their defaults.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from basisdb import BasisDBError

__all__ = ["ENV_PREFIX", "ServiceSettings", "SettingsError", "load_settings"]

ENV_PREFIX = "BASISDB_SERVICE_"


class ServiceSettings(BaseSettings):
    """Configuration of one service process.

    Every field can be set as an environment variable with the prefix ``BASISDB_SERVICE_``,
    for example ``BASISDB_SERVICE_STORE=/data/store.h5``.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True)

    store: Path | None = Field(None, description="store file; without one, the default store (built on first use)")
    host: str = Field("127.0.0.1", description="interface to bind")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    workers: int = Field(1, ge=1, description="server processes")
    verify_store: bool = Field(
        True, description="check every dataset's sha256 at start-up (turn off only for very large stores)"
    )
    store_verified: str = Field("", description="set by `basisdb serve` for its workers: the fingerprint it verified")

    # What one request may ask for
    max_positions: int = Field(100_000, ge=1, description="most positions in one encoding request; more gets 413")
    max_output_values: int = Field(
        4_000_000,
        ge=1,
        description="most numbers in one encoding answer: positions x basis functions (x 2 when complex); "
        "more gets 413",
    )
    max_atoms: int = Field(
        2_000,
        ge=1,
        description="most atoms in a structure, input or standardized, "
        "or that a CIF's sites and operations can expand to; more gets 413",
    )
    max_frame_work: int = Field(
        200_000_000,
        ge=1,
        description="most plane waves evaluated for one structure: frames x atoms x frequencies; more gets 413",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="largest request body; more gets 413 before it is read"
    )
    max_export_settings: int = Field(530, ge=1, description="most settings in one export")
    max_worker_bytes: int = Field(
        384 * 1024 * 1024,
        ge=64 * 1024 * 1024,
        description="resident memory a worker process may keep after a request; above it, it is replaced",
    )

    # How much work runs at once, and for how long
    max_heavy_requests: int = Field(
        2,
        ge=1,
        description="encodings, structures and exports computed at once per process; more get 503 with Retry-After",
    )
    request_timeout: float = Field(
        30.0, gt=0, description="seconds a request may take, answer included; heavy work stops then (503)"
    )

    # Connections (basisdb serve): what a client may hold open
    header_timeout: float = Field(
        10.0, gt=0, description="seconds to send a request's line and headers; then 408 and the connection is closed"
    )
    body_timeout: float = Field(
        30.0, gt=0, description="seconds to send a request's body; then 408 and the connection is closed"
    )
    keep_alive: int = Field(5, ge=1, description="seconds an idle keep-alive connection stays open")
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="largest request line plus headers; more gets 431")
    max_connections: int = Field(1024, ge=1, description="open connections per process; more are closed at once")
    max_client_connections: int = Field(
        64,
        ge=1,
        description="open connections per client address and process; more from that address are closed at once "
        "(behind a proxy every client has the proxy's address: see the README)",
    )

    # Memory
    basis_cache_size: int = Field(1024, ge=0, description="rendered (setting, radius, format) responses kept (0: none)")
    cache_max_bytes: int = Field(256 * 1024 * 1024, ge=0, description="bytes of rendered responses kept")
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS; without any, CORS is off"
    )

    # Shutdown (basisdb serve), and the explorer page
    shutdown_timeout: float = Field(
        3.0, ge=0, description="seconds running requests get to finish on SIGTERM before they are cancelled"
    )
    explorer: bool = Field(True, description="serve the basis explorer page at /explorer (and its files at /static)")


class SettingsError(BasisDBError, ValueError):
    """Settings, from the command line or the environment, that the service refuses."""


def load_settings() -> ServiceSettings:
    """The settings in the environment, or a :class:`SettingsError` that names, on one line,
    each offending option and its variable."""
    try:
        return ServiceSettings()
    except ValidationError as exc:
        raise SettingsError("; ".join(_problem(error) for error in exc.errors())) from None


def _problem(error) -> str:
    if not error["loc"]:
        return error["msg"]
    name = str(error["loc"][0])
    return f"--{name.replace('_', '-')} ({ENV_PREFIX}{name.upper()}): {error['msg']}, got {error['input']!r}"
