"""``python -m service --store PATH --host 127.0.0.1 --port 8000 [--workers N]``

The hardened way to run the service: it verifies the store once, then starts uvicorn with
the connection limits of :mod:`service.protocol` (header and body timeouts, header size,
connection cap) and a graceful shutdown of a few seconds.  Every option is a field of
:class:`service.config.ServiceSettings` (also settable as ``BASISDB_SERVICE_*``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing

from basisdb import BasisStore, ChecksumMismatchError, command_parser, run_command

from .config import ENV_PREFIX, ServiceSettings, load_settings

# Seconds uvicorn gives running requests on SIGTERM before it cancels them.
GRACEFUL_SHUTDOWN = 3


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m service", __doc__)
    defaults = load_settings()  # the environment's values are the options' defaults
    for name, field in ServiceSettings.model_fields.items():
        if name == "store_verified":
            continue
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        text = field.description  # with the default appended (command_parser), unless it says it
        annotation = field.annotation
        if annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif typing.get_origin(annotation) is list:
            parser.add_argument(flag.removesuffix("s"), dest=name, action="append", default=None, help=text)
        else:
            kind = next((t for t in (int, float, str) if annotation is t), str)
            parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument("--log-level", default="warning", help="uvicorn's log level")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Worker processes read their settings from the environment.
    for name in ServiceSettings.model_fields:
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"{ENV_PREFIX}{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
    settings = load_settings()
    # Open (or build) and verify the store once here, so that workers never race to build it
    # and do not each read every dataset again.
    with BasisStore.open(settings.store) as store:
        if settings.verify_store:
            failures = store.verify_checksums()
            if failures:
                problems = "; ".join(failures[:3])
                raise ChecksumMismatchError(
                    f"{store.path} failed verification: {problems}; rebuild it with `basisdb build`"
                )
            os.environ[f"{ENV_PREFIX}STORE_VERIFIED"] = store.fingerprint
        os.environ[f"{ENV_PREFIX}STORE"] = str(store.path)
    import uvicorn

    uvicorn.run(
        "service.app:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=args.log_level,
        http="service.protocol:GuardedHttpToolsProtocol",
        timeout_keep_alive=settings.keep_alive,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
