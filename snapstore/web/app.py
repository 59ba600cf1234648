"""The web application: routes, each one call into the library's read API, rendered by
the templates beside this module or as JSON.

It only reads: the store it is given is opened read-only (``snapstore.open(...,
read_only=...)``), every route answers GET and HEAD alone, and no part of a URL names a
file (a run is looked up by its id or name in the database; the stylesheet is read from
the package once).  Every name and value reaches the page through Jinja2's escaping.
"""

from __future__ import annotations

import hmac
import inspect
import math
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from snapstore.errors import CorruptRecordError, InvalidArgumentError, RunNotFoundError, SnapstoreError, StoreError
from snapstore.operations import LISTED_STORIES, describe, export_bytes
from snapstore.plotting import ensemble_groups
from snapstore.sizes import human_size
from snapstore.web.figures import Figures
from snapstore.web.listing import RunsQuery, compare_state, runs_listing

if TYPE_CHECKING:
    from snapstore.facade import Store
    from snapstore.reading import Run, Snapshot

TOKEN_COOKIE = "snapstore_token"
MAX_OVERLAID = 20  # runs one figure overlays; more is an ensemble (a filter, grouped)
# Nothing from elsewhere: no script at all, styles and images from this server only.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATUS = ((RunNotFoundError, 404), (CorruptRecordError, 500), (StoreError, 503), (SnapstoreError, 400))


def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("snapstore.web", "templates"),
                              autoescape=select_autoescape(default=True, default_for_string=True))
    environment.filters["number"] = _number
    environment.filters["size"] = _size
    return environment


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _size(value: float | None) -> str:
    return "" if value is None else human_size(value)


def plain(value: Any) -> Any:
    """A value as JSON has it: NaN and missing values are null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "__dataclass_fields__"):
        return plain({name: getattr(value, name) for name in value.__dataclass_fields__})
    return value


class _Token(BaseHTTPMiddleware):
    """Asks every request for the token: a ``Bearer`` header, the cookie a first visit
    with ``?token=`` sets, or that query itself (then redirected without it)."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token.encode()

    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        header = request.headers.get("authorization", "")
        if self._matches(header.removeprefix("Bearer ") if header.startswith("Bearer ") else None) \
                or self._matches(request.cookies.get(TOKEN_COOKIE)):
            return await call_next(request)
        if self._matches(request.query_params.get("token")):
            rest = urlencode([(key, value) for key, value in request.query_params.multi_items() if key != "token"])
            response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token.decode(), httponly=True, samesite="strict")
            return response
        return Response("this snapstore server needs its token: open it with ?token=... once, "
                        "or send 'Authorization: Bearer ...'\n", status_code=401, media_type="text/plain")


class _Headers(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        return response


class Site:
    """The pages of one store: each method answers one route."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.figures = Figures()
        self.templates = _environment()
        self.stylesheet = resources.files("snapstore.web").joinpath("static/style.css").read_bytes()

    def warm(self) -> None:
        """Draw the first runs page once, compile every template and import matplotlib, so
        that the first visitor does not wait for imports, the store's first connection and
        compiling."""
        for name in self.templates.list_templates():
            self.templates.get_template(name)
        self.figures.warm()
        listing = runs_listing(self.store, RunsQuery())
        self.page("runs.html", query=RunsQuery(), listing=listing, error=None)

    # -- helpers ------------------------------------------------------------------
    def page(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        body = self.templates.get_template(template).render(store=self.store.where, **values)
        return HTMLResponse(body, status_code=status)

    def failure(self, exc: SnapstoreError, as_json: bool = False) -> Response:
        status = next(code for kind, code in _STATUS if isinstance(exc, kind))
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if as_json:
            return JSONResponse({"error": message}, status_code=status)
        return self.page("error.html", status=status, message=message)

    def run(self, request: Request) -> Run:
        return self.store.run(request.path_params["run"])

    def snapshot(self, request: Request) -> Snapshot:
        target, seq = self.run(request), request.path_params["seq"]
        found = target.story(seq)
        if found is None:
            raise RunNotFoundError(f"run {target.name!r} has no story #{seq}")
        return found

    # -- pages ----------------------------------------------------------------------
    def runs(self, request: Request) -> Response:
        query = RunsQuery.of(request.query_params)
        try:
            listing = runs_listing(self.store, query)
        except SnapstoreError as exc:  # a filter's one-line error is shown above an empty list
            return self.page("runs.html", status=400, query=query, listing=None,
                             error=str(exc).splitlines()[0])
        return self.page("runs.html", query=query, listing=listing, error=None)

    def api_runs(self, request: Request) -> Response:
        query = RunsQuery.of(request.query_params)
        try:
            listing = runs_listing(self.store, query)
        except SnapstoreError as exc:
            return self.failure(exc, as_json=True)
        return JSONResponse(plain({"total": listing.total, "offset": query.offset, "limit": query.per,
                                   "sort": query.sort, "descending": query.descending, "runs": listing.rows}))

    def run_page(self, request: Request) -> Response:
        # a kira -D stream's hundreds of thousands of partial stories are reached by number, not listed
        summary = describe(self.store, request.path_params["run"], listed=LISTED_STORIES)
        listed = summary["snapshots"]
        return self.page("run.html", run=summary, listed=listed, unlisted=summary["stories"] - len(listed),
                         last_seq=max(summary["last_seq"], 0))

    def story_by_number(self, request: Request) -> Response:
        target = self.run(request)
        try:
            seq = int(request.query_params.get("seq", ""))
        except ValueError:
            raise InvalidArgumentError("a story's number is a whole number") from None
        return RedirectResponse(f"/run/{target.id}/snapshot/{seq}", status_code=303)

    def api_run(self, request: Request) -> Response:
        return JSONResponse(plain(describe(self.store, request.path_params["run"])))

    def run_figure(self, request: Request) -> Response:
        return _png(self.figures.runs([self.run(request)]))

    def snapshot_page(self, request: Request) -> Response:
        item = self.snapshot(request)
        root = {key: plain(value) for key, value in item.root().items()} if item.kind == "snapshot" else {}
        return self.page("snapshot.html", item=item, run=item.run, root=root)

    def snapshot_figure(self, request: Request) -> Response:
        return _png(self.figures.snapshot(self.snapshot(request)))

    def snapshot_text(self, request: Request) -> Response:
        item = self.snapshot(request)
        return _download(item.text_bytes(), f"{item.run.id}-{item.seq:06d}.story", "text/plain")

    async def stream(self, request: Request) -> Response:
        target = await run_in_threadpool(self.run, request)
        # kira's stream as it wrote it (not the initial conditions), a story (or a pack of kira -D ones) at a time
        texts = _made_in_one_thread(lambda: target.text_chunks(target.select()))
        first = await anext(texts, b"")  # a record that fails its checks is an error page, not a cut download
        return StreamingResponse(_after(first, texts), media_type="text/plain",
                                 headers=_attachment(f"{target.id}-kira.out"))

    def particles(self, request: Request) -> Response:
        target = self.run(request)
        return _download(export_bytes(target, "npz"), f"{target.id}-particles.npz", "application/octet-stream")

    def observables(self, request: Request) -> Response:
        target = self.run(request)
        return _download(export_bytes(target, "parquet", observables=True), f"{target.id}-observables.parquet",
                         "application/vnd.apache.parquet")

    def overlaid(self, request: Request) -> list[Run]:
        chosen = request.query_params.getlist("run")
        if len(chosen) > MAX_OVERLAID:
            raise InvalidArgumentError(f"one figure overlays at most {MAX_OVERLAID} runs, not {len(chosen)}: "
                                       "compare more as an ensemble (a filter, grouped by a column)")
        return [self.store.run(name) for name in chosen]

    def compare(self, request: Request) -> Response:
        where, by = _ensemble_asked(request)
        runs = self.overlaid(request)
        figure = None
        if runs:
            figure = "/compare/figure.png?" + urlencode([("run", item.id) for item in runs])
        elif where is not None or by is not None:
            figure = "/compare/ensemble.png?" + urlencode([(key, value) for key, value in
                                                           (("where", where), ("by", by)) if value])
            ensemble_groups(self.store, where, by)  # a filter or column that fails is told here, not as a broken image
        return self.page("compare.html", runs=runs, where=where or "", by=by or "", figure=figure)

    def compare_figure(self, request: Request) -> Response:
        return _png(self.figures.runs(self.overlaid(request)))

    def ensemble_figure(self, request: Request) -> Response:
        where, by = _ensemble_asked(request)
        return _png(self.figures.ensemble(self.store, where, by, compare_state(self.store, where)))

    def stylesheet_file(self, request: Request) -> Response:
        return Response(self.stylesheet, media_type="text/css")


_END = object()


async def _made_in_one_thread(make: Callable[[], Iterable[bytes]], ahead: int = 4) -> AsyncIterator[bytes]:
    """The chunks of ``make()``, made on one thread of their own (a read transaction
    belongs to the thread that began it), at most ``ahead`` before the client reads
    them; an error stops the chunks and is raised here, and a client that goes stops
    the thread."""
    made: queue.Queue[object] = queue.Queue(maxsize=ahead)
    gone = threading.Event()

    def offer(item: object) -> bool:
        while not gone.is_set():
            try:
                made.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in make():
                if not offer(chunk):
                    return
            offer(_END)
        except Exception as exc:
            offer(exc)

    threading.Thread(target=produce, name="snapstore-download", daemon=True).start()
    try:
        while True:
            item = await run_in_threadpool(made.get)
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item  # type: ignore[misc]
    finally:
        gone.set()


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def _ensemble_asked(request: Request) -> tuple[str | None, str | None]:
    """The filter and grouping column a compare page or its figure is asked for (empty: none)."""
    return request.query_params.get("where") or None, request.query_params.get("by") or None


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _download(data: bytes, name: str, media_type: str) -> Response:
    return Response(data, media_type=media_type, headers=_attachment(name))


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png")


Endpoint = Callable[[Request], Response | Awaitable[Response]]


def _guarded(site: Site, handler: Endpoint, as_json: bool = False) -> Endpoint:
    """``handler`` with the library's errors as pages (or JSON) with their status.  A
    plain function stays one, which Starlette runs on its thread pool."""
    if inspect.iscoroutinefunction(handler):
        async def waited(request: Request) -> Response:
            try:
                return await handler(request)
            except SnapstoreError as exc:
                return site.failure(exc, as_json)
        return waited

    def endpoint(request: Request) -> Response:
        try:
            return handler(request)  # type: ignore[return-value]
        except SnapstoreError as exc:
            return site.failure(exc, as_json)
    return endpoint


def create_app(store: Store, token: str | None = None, warm: bool = False) -> Starlette:
    """The web application over ``store`` (open it with ``read_only=`` a time limit, as
    ``serve`` does); with ``token`` every request must carry it; ``warm`` draws the first
    runs page before it answers anything."""
    site = Site(store)
    if warm:
        site.warm()
    pages: list[tuple[str, Endpoint, bool]] = [
        ("/", site.runs, False),
        ("/api/runs", site.api_runs, True),
        ("/run/{run}", site.run_page, False),
        ("/api/run/{run}", site.api_run, True),
        ("/run/{run}/figure.png", site.run_figure, False),
        ("/run/{run}/kira.out", site.stream, False),
        ("/run/{run}/particles.npz", site.particles, False),
        ("/run/{run}/observables.parquet", site.observables, False),
        ("/run/{run}/snapshot", site.story_by_number, False),
        ("/run/{run}/snapshot/{seq:int}", site.snapshot_page, False),
        ("/run/{run}/snapshot/{seq:int}/figure.png", site.snapshot_figure, False),
        ("/run/{run}/snapshot/{seq:int}/story", site.snapshot_text, False),
        ("/compare", site.compare, False),
        ("/compare/figure.png", site.compare_figure, False),
        ("/compare/ensemble.png", site.ensemble_figure, False),
        ("/style.css", site.stylesheet_file, False),
    ]
    middleware = [Middleware(_Headers)] + ([Middleware(_Token, token=token)] if token else [])
    routes = [Route(path, _guarded(site, handler, as_json), methods=["GET", "HEAD"])
              for path, handler, as_json in pages]
    return Starlette(routes=routes, middleware=middleware)
