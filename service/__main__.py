"""``python -m service --store PATH --host 127.0.0.1 --port 8000 [--workers N]``."""

from __future__ import annotations

import argparse
import os
import sys

from .config import ServiceSettings


def main(argv: list[str] | None = None) -> int:
    defaults = ServiceSettings()
    parser = argparse.ArgumentParser(prog="python -m service", description="Serve a basisdb store over HTTP.")
    parser.add_argument("--store", default=defaults.store, help="store file (default: the default store, built on first use)")
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="server processes")
    parser.add_argument("--max-positions", type=int, default=defaults.max_positions)
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    parser.add_argument("--basis-cache-size", type=int, default=defaults.basis_cache_size, help="rendered basis responses kept (0: none)")
    parser.add_argument("--cors-origin", action="append", default=None, help="allow this origin (repeatable); CORS is off by default")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    from basisdb import BasisDBError, BasisStore

    try:
        # Open (or build) the store once here, so that worker processes never race to build it.
        with BasisStore.open(args.store) as store:
            store_path = store.path
    except BasisDBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Worker processes read their settings from the environment.
    os.environ["BASISDB_SERVICE_STORE"] = str(store_path)
    os.environ["BASISDB_SERVICE_MAX_POSITIONS"] = str(args.max_positions)
    os.environ["BASISDB_SERVICE_MAX_BODY_BYTES"] = str(args.max_body_bytes)
    os.environ["BASISDB_SERVICE_BASIS_CACHE_SIZE"] = str(args.basis_cache_size)
    if args.cors_origin:
        import json

        os.environ["BASISDB_SERVICE_CORS_ORIGINS"] = json.dumps(args.cors_origin)
    import uvicorn

    uvicorn.run(
        "service.app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
