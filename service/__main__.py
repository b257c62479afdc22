"""``basisdb serve --store PATH --host 127.0.0.1 --port 8000 [--workers N]``

The hardened way to run the service: it verifies the store once, then starts uvicorn with
the connection limits of :mod:`basisdb.service.protocol` (header and body timeouts, header size,
connection cap) and a graceful shutdown of a few seconds.  Before uvicorn starts it prints
two lines on stdout: the store it serves, and the address (with the explorer's).  Every
option is a field of :class:`basisdb.service.config.ServiceSettings` (also settable as
``BASISDB_SERVICE_*``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import typing

from basisdb import BasisStore, ChecksumMismatchError, command_parser, default_store_path, run_command

from .config import ENV_PREFIX, ServiceSettings, SettingsError, load_settings

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
STARTUP_FAILURE = 3  # uvicorn's exit status when the server cannot start


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("basisdb serve", __doc__)
    defaults = load_settings()  # the environment's values are the options' defaults
    for name, field in ServiceSettings.model_fields.items():
        if name == "store_verified":
            continue
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        text = field.description  # with the default appended (command_parser), unless it says it
        annotation = field.annotation
        if name == "store" and default is None:
            text = f"{text} (default: {default_store_path()})"
        if annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif typing.get_origin(annotation) is list:
            text = f"{text}; repeat the option for several (default: {', '.join(default) or 'none'})"
            parser.add_argument(
                flag.removesuffix("s"), dest=name, action="append", default=None, metavar="ORIGIN", help=text
            )
        else:
            kind = next((t for t in (int, float, str) if annotation is t), str)
            parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument("--log-level", default="warning", choices=LOG_LEVELS, help="uvicorn's log level")
    return parser


WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def url_of(host: str, port: int) -> str:
    """The address a browser on this machine opens for a server bound to ``host:port``."""
    if host in WILDCARD_HOSTS:  # every interface: this machine reaches it on loopback
        host = "::1" if host == "::" else "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket uvicorn serves, bound here: with ``port`` 0 the system chooses the port, and
    since it stays bound from then on, the address printed is the one served (no other process
    can be given the port in between, as it could if it were probed and bound again)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: restarts reuse the port
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = "a port" if port == 0 else f"port {port}"
        raise SettingsError(
            f"cannot listen on {host!r}, {where}: {exc.strerror or exc}; choose another --host "
            f"({ENV_PREFIX}HOST) or --port ({ENV_PREFIX}PORT; 0 lets the system choose a free one)"
        ) from None
    sock.set_inheritable(True)  # worker processes serve it too; uvicorn listens when it starts
    return sock


def announce(store: BasisStore, settings: ServiceSettings, port: int) -> None:
    """What is served, and where: two lines on stdout before uvicorn starts."""
    identity = store.identity
    radii = ", ".join(f"{radius:g}" for radius in identity["radii"])
    checked = "checksums verified" if settings.verify_store else "checksums not verified (--no-verify-store)"
    print(
        f"serving {store.path} ({identity['n_settings']} settings, radii {radii}; "
        f"fingerprint {identity['fingerprint'][:16]}; {checked})"
    )
    url = url_of(settings.host, port)
    pages = f"explorer: {url}/explorer, API docs: {url}/docs" if settings.explorer else f"API docs: {url}/docs"
    where = f", listening on every interface ({settings.host or '0.0.0.0'})" if settings.host in WILDCARD_HOSTS else ""
    print(f"at {url}{where} ({pages}); stop with Ctrl-C", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Worker processes read their settings from the environment.
    for name in ServiceSettings.model_fields:
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"{ENV_PREFIX}{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
    settings = load_settings()
    sock = listening_socket(settings.host, settings.port)
    port = sock.getsockname()[1]
    # Open (or build) and verify the store once here, so that workers never race to build it
    # and do not each read every dataset again.
    with sock:
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
            announce(store, settings, port)
        return 0 if serve(settings, sock, args.log_level) else STARTUP_FAILURE


def serve(settings: ServiceSettings, sock: socket.socket, log_level: str) -> bool:
    """Run uvicorn on the bound socket ``sock`` (with ``settings.workers`` processes, under
    uvicorn's supervisor) until it is stopped; False if the server failed to start."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from .protocol import GuardedHttpToolsProtocol

    config = uvicorn.Config(
        "basisdb.service.app:app",
        host=settings.host,
        port=sock.getsockname()[1],
        workers=settings.workers,
        log_level=log_level,
        http=GuardedHttpToolsProtocol,  # the class: older uvicorn releases read no import string here
        timeout_keep_alive=settings.keep_alive,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        access_log=False,
    )
    if settings.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
        return True
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return server.started


if __name__ == "__main__":
    sys.exit(run_command(main))
