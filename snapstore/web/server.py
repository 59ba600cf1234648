"""``snapstore serve``: the web application on a local port, safe by default.

It binds 127.0.0.1 unless told otherwise; binding any other address opens the archive to
the network and needs a token (``--token`` or ``SNAPSTORE_TOKEN``), which every request
must then carry.  The store is opened read-only with a time limit on every read.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Callable

from snapstore.errors import InvalidArgumentError

READ_LIMIT = 30.0  # seconds any one page's reads may take
LOOPBACK = "127.0.0.1"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_binding(host: str, token: str | None) -> str | None:
    """The token the server asks for (the argument, else ``SNAPSTORE_TOKEN``); refuses a
    host other than loopback without one, and a token too short to resist guessing."""
    token = token or os.environ.get("SNAPSTORE_TOKEN") or None
    if token is None and not _is_loopback(host):
        raise InvalidArgumentError(f"serve: binding {host} opens the archive to the network: give a token "
                                   "(--token or SNAPSTORE_TOKEN), which every visitor must then send")
    if token is not None and len(token) < 16:
        raise InvalidArgumentError("serve: a token needs at least 16 characters (python -c 'import secrets; "
                                   "print(secrets.token_urlsafe())' makes one)")
    return token


def serve(url: str | None = None, payloads: str | None = None, host: str = LOOPBACK, port: int = 8000,
          token: str | None = None, read_limit: float = READ_LIMIT,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the store at ``url`` read-only on ``host``:``port`` until interrupted (see the
    module's docstring for the token); ``on_ready`` is told the store's URL once it is open
    and the first runs page drawn (see ``Site.warm``), and the port taken."""
    token = check_binding(host, token)
    if not 0 < port < 1 << 16:
        raise InvalidArgumentError(f"serve: {port} is not a TCP port (1 to 65535)")
    try:
        import uvicorn

        from snapstore.web.app import create_app
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"snapstore serve needs {exc.name}: pip install 'snapstore[web]'") from None
    from snapstore.facade import Store

    with Store(url, payloads=payloads, read_only=read_limit) as store:
        app = create_app(store, token, warm=True)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", server_header=False))
        with listen(host, port) as listening:
            if on_ready is not None:
                on_ready(store.where)
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops the server, as uvicorn.run lets it
                server.run(sockets=[listening])


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port``, taken before the server says it serves: an
    address this machine does not have, or a port another program holds or this user may
    not take, is one line (an ``OSError``)."""
    taken = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a restart finds it free
        taken.bind((host, port))
        taken.listen()
    except OSError as exc:
        taken.close()
        held = " (another program holds it: --port chooses another)" if exc.errno == errno.EADDRINUSE else ""
        raise OSError(f"serve: cannot listen on {host}:{port}: {exc.strerror or exc}{held}") from None
    return taken
