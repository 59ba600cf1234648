"""``snapstore serve``: the web application on a local port, safe by default.

It binds 127.0.0.1 unless told otherwise; binding any other address opens the archive to
the network and needs a token (``--token`` or ``SNAPSTORE_TOKEN``), which every request
must then carry.  The store is opened read-only with a time limit on every read.
"""

from __future__ import annotations

import ipaddress
import os
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
    and the first runs page drawn (see ``Site.warm``)."""
    token = check_binding(host, token)
    try:
        import uvicorn

        from snapstore.web.app import create_app
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"snapstore serve needs {exc.name}: pip install 'snapstore[web]'") from None
    from snapstore.facade import Store

    with Store(url, payloads=payloads, read_only=read_limit) as store:
        app = create_app(store, token, warm=True)
        if on_ready is not None:
            on_ready(store.where)
        uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
