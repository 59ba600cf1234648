"""The web interface in process (Starlette's test client), on both backends, over a store of
corpus runs and a run with a hostile name: what each page shows, that downloads are the
stored bytes, that it reads with least privilege and a time limit, and the token."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the web interface needs snapstore[web]")
from starlette.testclient import TestClient

import snapstore
from helpers import HOSTILE, fill_web_store, roots_of
from snapstore.errors import InvalidArgumentError, SnapstoreError
from snapstore.operations import describe
from snapstore.web import check_binding
from snapstore.web.app import create_app


@pytest.fixture(scope="module")
def web(module_store_url):
    folders = fill_web_store(module_store_url)
    with snapstore.open(module_store_url, read_only=30) as store:
        with TestClient(create_app(store)) as client:
            yield client, store, folders


def _names(html: str) -> list[str]:
    """The run names a runs page lists, unescaped."""
    import html as markup

    return [markup.unescape(name) for name in re.findall(r'<td class="name"><a href="/run/\w+">(.*?)</a>', html)]


def test_the_runs_page_filters_with_the_cli_s_language(web) -> None:
    client, store, _ = web
    everything = client.get("/")
    assert everything.status_code == 200 and sorted(_names(everything.text)) == sorted(r.name for r in store.runs())
    chosen = client.get("/", params={"where": "makeking.w = 5"})
    expected = sorted(r.name for r in store.runs("makeking.w = 5"))
    assert _names(chosen.text) == expected and {"n100-w5-s1", "n100-w5-s2"} <= set(expected)
    assert "n100-w3-s1" not in expected and f"{len(expected)} runs match" in chosen.text


def test_a_filter_that_does_not_parse_is_its_one_line_error_in_the_page(web) -> None:
    client, store, _ = web
    page = client.get("/", params={"where": "makeking.w =="})
    with pytest.raises(SnapstoreError) as raised:
        store.page("makeking.w ==")
    import html as markup

    shown = markup.unescape(re.search(r'<p class="error" id="error">(.*?)</p>', page.text).group(1))
    assert page.status_code == 400 and shown == str(raised.value) and "\n" not in shown
    api = client.get("/api/runs", params={"where": "makeking.w =="})
    assert api.status_code == 400 and api.json() == {"error": str(raised.value)}


@pytest.mark.parametrize("sort", ["run", "N", "t_last", "stored_bytes"])
def test_pages_of_runs_cover_every_run_once_in_the_order_asked(web, sort) -> None:
    client, store, _ = web
    frame = store.frame()
    key = {"run": frame["run"], "N": frame["N"], "t_last": frame["t_last"]}.get(sort)
    if key is None:
        key = np.array([store.run(name).stored_bytes for name in frame["run"]])
    pairs = zip(key.tolist(), frame["run"].tolist())
    # descending, ties by name A to Z (by name itself: Z to A)
    expected = ([name for _, name in sorted(pairs, reverse=True)] if sort == "run"
                else [name for _, name in sorted(pairs, key=lambda pair: (-pair[0], pair[1]))])
    shown: list[str] = []
    for number in (1, 2, 3):  # six runs, two a page
        page = client.get("/api/runs", params={"sort": sort, "desc": "1", "per": "2", "page": str(number)}).json()
        assert page["total"] == frame.rows and page["limit"] == 2 and page["offset"] == 2 * (number - 1)
        shown += [row["run"] for row in page["runs"]]
    assert shown == expected
    html = client.get("/", params={"sort": sort, "desc": "1", "per": "2", "page": "2"}).text
    assert _names(html) == expected[2:4] and 'id="previous"' in html and 'id="next"' in html


def test_the_json_listing_holds_typed_parameters_and_tags(web) -> None:
    client, store, _ = web
    rows = {row["run"]: row for row in client.get("/api/runs", params={"per": "500"}).json()["runs"]}
    frame = {row["run"]: row for row in store.frame().records()}
    assert set(rows) == set(frame)
    row = rows["n200-w3-s1"]
    assert row["makeking.n"] == 200 and isinstance(row["makeking.n"], int)
    assert row["makeking.w"] == 3 and row["kira.t"] == frame["n200-w3-s1"]["kira.t"]
    assert row["tag.family"] == "grid" and row["pipeline"] == "makeking | makemass | scale | kira"
    assert row["finished"] is True  # kira's stderr says it reached t = 10
    assert rows[HOSTILE]["tag.family"] == "<b>bold</b>"


def test_a_hostile_name_and_tag_are_shown_as_text(web) -> None:
    client, store, _ = web
    run_id = store.run(HOSTILE).id
    for url in ("/", f"/run/{run_id}", f"/run/{run_id}/snapshot/1", f"/compare?run={run_id}"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "<script>" not in page.text and "<b>" not in page.text, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(f"/run/{run_id}").text
    assert "script-src" not in client.get("/").headers["content-security-policy"]  # no script may run at all


def test_the_run_page_shows_provenance_diagnostics_and_every_story(web) -> None:
    client, store, _ = web
    target = store.run("binaries")
    page = client.get(f"/run/{target.id}").text
    for item in target.inputs:
        assert item["sha256"] in page and item["location"] in page
    ingest = target.ingests[0]
    assert f"by {ingest['user']}@{ingest['host']}" in page and ingest["at"] in page
    for step in target.commands:
        assert " ".join(step["argv"]) in page
    log = snapstore.operations.describe(store, "binaries")["diagnostics"][0]
    assert f"{len(log.reports)} energy reports" in page
    links = re.findall(rf'href="/run/{target.id}/snapshot/(\d+)"', page)
    assert [int(seq) for seq in links] == [item.seq for item in target.stories()]
    assert 'src="/run/' in page and client.get(f"/run/{target.id}/figure.png").content.startswith(b"\x89PNG")
    described = client.get(f"/api/run/{target.id}").json()
    assert described["inputs"] == target.inputs and described["name"] == "binaries"
    assert described["diagnostics"][0]["t_end"] == log.t_end


def test_downloads_are_the_stored_bytes(web) -> None:
    client, store, folders = web
    for name in ("binaries", HOSTILE):
        target = store.run(name)
        stream = client.get(f"/run/{target.id}/kira.out")
        assert stream.content == gzip.decompress((folders[name] / "kira.out.gz").read_bytes())
        assert stream.headers["content-disposition"] == f'attachment; filename="{target.id}-kira.out"'
        texts = [root.text.encode() for root in roots_of(folders[name] / "kira.out.gz")]
        for seq in (1, len(texts)):
            story = client.get(f"/run/{target.id}/snapshot/{seq}/story")
            assert story.content == texts[seq - 1] == target.select(slice(seq, seq + 1))[0].text_bytes()


def test_array_downloads_hold_the_run_s_arrays(web) -> None:
    client, store, _ = web
    target = store.run("n100-w3-s1")
    with np.load(io.BytesIO(client.get(f"/run/{target.id}/particles.npz").content)) as arrays:
        last = target.snapshots()[-1]
        np.testing.assert_array_equal(arrays[f"seq{last.seq:06d}"], last.particles())
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(io.BytesIO(client.get(f"/run/{target.id}/observables.parquet").content))
    series = target.timeseries()
    assert table.column("seq").to_pylist() == series.seqs.tolist()
    np.testing.assert_array_equal(table.column("total_energy").to_numpy(), series["total_energy"])


def test_the_snapshot_page_shows_its_root_values_and_stars(web) -> None:
    client, store, _ = web
    item = store.run("n200-w3-s1").snapshots()[-1]
    page = client.get(f"/run/{item.run.id}/snapshot/{item.seq}").text
    root = item.root()
    assert f"<th>total_energy</th><td>{float(root['total_energy']):.6g}</td>" in page
    figure = client.get(f"/run/{item.run.id}/snapshot/{item.seq}/figure.png")
    assert figure.headers["content-type"] == "image/png" and len(figure.content) > 10_000


def test_compare_overlays_runs_or_draws_an_ensemble(web) -> None:
    client, store, _ = web
    ids = [store.run(name).id for name in ("n100-w3-s1", "n100-w5-s1")]
    page = client.get("/compare", params=[("run", run_id) for run_id in ids]).text
    assert all(f'href="/run/{run_id}"' in page for run_id in ids)
    image = re.search(r'<img id="figure" src="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert client.get(image).content.startswith(b"\x89PNG")
    grouped = client.get("/compare", params={"where": "tag.family = grid", "by": "makeking.w"}).text
    image = re.search(r'<img id="figure" src="([^"]+)"', grouped).group(1).replace("&amp;", "&")
    assert client.get(image).content.startswith(b"\x89PNG")
    too_many = [("run", run_id) for run_id in ids * 11]
    assert client.get("/compare", params=too_many).status_code == 400
    assert client.get("/compare/figure.png", params=too_many).status_code == 400
    for asked, said in (({"where": "makeking.w =="}, "expected a value"),
                        ({"by": "makeking.nope"}, "no column &#39;makeking.nope&#39; among the runs"),
                        ({"where": "makeking.n = 12345"}, "no run matches")):
        wrong = client.get("/compare", params=asked)
        assert wrong.status_code == 400 and said in re.search(r'id="error">(.*?)<', wrong.text).group(1), asked


def test_no_url_reaches_the_file_system_and_nothing_but_get_is_answered(web, tmp_path) -> None:
    client, store, _ = web
    for url in ("/run/..%2F..%2F..%2Fetc%2Fpasswd", "/run/%2Fetc%2Fpasswd/kira.out", "/static/../../pyproject.toml",
                "/style.css/..%2F__init__.py", "/run/nosuch/snapshot/1/story"):
        answer = client.get(url)
        assert answer.status_code == 404 and b"root:" not in answer.content, url
    run_id = store.run("n100-w3-s1").id
    for seq in ("999", str(2**63), "9" * 40):  # past int64, a number no database integer binds
        assert client.get(f"/run/{run_id}/snapshot/{seq}").status_code == 404, seq
        assert client.get(f"/run/{run_id}/snapshot/{seq}/story").status_code == 404, seq
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)(f"/run/{run_id}").status_code == 405


def _fingerprint(url: str) -> str | None:
    """The SQLite file's bytes, hashed (None for a server)."""
    path = url.removeprefix("sqlite:///")
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if url.startswith("sqlite") else None


def test_the_server_reads_with_least_privilege(web, module_store_url) -> None:
    client, store, _ = web
    before = _fingerprint(module_store_url)
    for url in ("/", "/api/runs", f"/run/{store.run('binaries').id}", "/compare?by=makeking.w"):
        client.get(url)
    assert _fingerprint(module_store_url) == before
    with store.engine.connect() as connection:
        if module_store_url.startswith("postgresql"):
            role, read_only = connection.exec_driver_sql(
                "SELECT current_user, current_setting('default_transaction_read_only')").one()
            assert (role, read_only) == ("snapstore_reader", "on")
        with pytest.raises(Exception, match=r"(?i)read-only|readonly|permission denied"):
            connection.exec_driver_sql("DELETE FROM tag")


def test_a_read_is_stopped_at_its_time_limit(web, module_store_url) -> None:  # web: the store exists
    with snapstore.open(module_store_url, read_only=0.3) as store:
        count = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
                 "SELECT count(*) FROM n")
        started = time.monotonic()
        with store.engine.connect() as connection, pytest.raises(Exception, match=r"(?i)interrupt|cancel|timeout"):
            connection.exec_driver_sql(count).all()
        assert time.monotonic() - started < 10


def test_binding_beyond_loopback_needs_a_token(monkeypatch) -> None:
    monkeypatch.delenv("SNAPSTORE_TOKEN", raising=False)
    assert check_binding("127.0.0.1", None) is None and check_binding("::1", None) is None
    for host in ("0.0.0.0", "192.168.1.5", "example.org"):
        with pytest.raises(InvalidArgumentError, match=f"binding {re.escape(host)} opens the archive"):
            check_binding(host, None)
    with pytest.raises(InvalidArgumentError, match="at least 16 characters"):
        check_binding("0.0.0.0", "short")
    monkeypatch.setenv("SNAPSTORE_TOKEN", "x" * 20)
    assert check_binding("0.0.0.0", None) == "x" * 20


def test_the_cli_refuses_to_serve_the_network_without_a_token(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SNAPSTORE_TOKEN", raising=False)
    store = tmp_path / "s.db"
    cli = Path(sys.executable).parent / "snapstore"
    refused = subprocess.run([cli, "serve", "--db", str(store), "--host", "0.0.0.0"], capture_output=True, text=True,
                             timeout=60)
    said = refused.stderr.strip().splitlines()[-1]
    assert refused.returncode != 0 and said.startswith("snapstore: error: serve: binding 0.0.0.0")
    missing = subprocess.run([cli, "serve", "--db", str(store), "--port", "1"], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode != 0 and "no snapstore store at" in missing.stderr and not store.exists()
    assert "serving" not in missing.stderr  # it says it serves only once it does


def test_serve_takes_its_port_before_it_says_it_serves(tmp_path) -> None:
    store = tmp_path / "s.db"
    snapstore.open(str(store)).close()
    serve = [str(Path(sys.executable).parent / "snapstore"), "serve", "--db", str(store), "--port"]
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        refused = subprocess.run([*serve, str(port)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and refused.stderr.splitlines() == [
        f"snapstore: error: serve: cannot listen on 127.0.0.1:{port}: {os.strerror(errno.EADDRINUSE)} "
        "(another program holds it: --port chooses another)"]
    for wrong in ("0", "65536", "9" * 20):
        outside = subprocess.run([*serve, wrong], capture_output=True, text=True, timeout=60)
        assert outside.returncode == 2 and outside.stderr.splitlines() == [
            f"snapstore: error: serve: {wrong} is not a TCP port (1 to 65535)"]
    server = subprocess.Popen([*serve, str(port)], stderr=subprocess.PIPE, text=True)  # the port, now free
    try:
        assert server.stderr is not None and server.stderr.readline().startswith(f"serving sqlite:///{store}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:  # said, so it answers
            assert page.status == 200 and b"Runs" in page.read()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()


def test_serve_writes_an_ipv6_address_as_a_url_does(tmp_path) -> None:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6) as probe:
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    store = tmp_path / "s.db"
    snapstore.open(str(store)).close()
    server = subprocess.Popen([str(Path(sys.executable).parent / "snapstore"), "serve", "--db", str(store),
                               "--host", "::1", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None and f"at http://[::1]:{port}/ " in server.stderr.readline()
        with urllib.request.urlopen(f"http://[::1]:{port}/", timeout=30) as page:  # the address said is the one
            assert page.status == 200
    finally:
        server.kill()


def test_with_a_token_every_request_must_carry_it(web, module_store_url) -> None:
    token = "t0ken-" + "s" * 20
    with snapstore.open(module_store_url, read_only=30) as store, \
            TestClient(create_app(store, token), follow_redirects=False) as client:
        assert client.get("/").status_code == 401 and client.get("/api/runs").status_code == 401
        assert client.get("/", params={"token": "wrong" * 5}).status_code == 401
        assert client.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        entered = client.get("/", params={"token": token, "where": "N = 100"})
        assert entered.status_code == 303 and entered.headers["location"] == "/?where=N+%3D+100"
        assert "httponly" in entered.headers["set-cookie"].lower()
        assert client.get("/api/runs").status_code == 200  # the cookie carries it from now on


@pytest.mark.variants
def test_a_kira_d_stream_s_partial_stories_are_reached_by_number(tmp_path) -> None:
    from helpers import variants_dir

    source = variants_dir() / "Db_stream"
    url = f"sqlite:///{tmp_path / 's.db'}"
    with snapstore.open(url) as store:
        target = store.ingest(source, name="Db")
    stories = target.stories()
    whole = [item.seq for item in stories if item.kind == "snapshot"]
    assert len(stories) > 1000 > len(whole)  # -D b: 3,663 stories, 6 of them whole snapshots
    with snapstore.open(url, create=False) as store:  # a fresh Run: story() seeks, not lists
        for seq in (0, 1, whole[-1], whole[2] + 1, len(stories) // 2, len(stories) - 1):
            found = store.run("Db").story(seq)
            assert found is not None and (found.seq, found.kind, found.time) == (seq, stories[seq].kind,
                                                                                stories[seq].time)
            assert found.text_bytes() == stories[seq].text_bytes()
            assert target.story(seq) is stories[seq]  # a listed run finds it in its list
        for beyond in (len(stories), -1, 2**63, -2**63 - 1):
            assert store.run("Db").story(beyond) is None and target.story(beyond) is None, beyond
    with snapstore.open(url, read_only=30) as store, TestClient(create_app(store), follow_redirects=False) as client:
        page = client.get(f"/run/{target.id}").text
        assert [int(seq) for seq in re.findall(rf'href="/run/{target.id}/snapshot/(\d+)"', page)] == whole
        assert f"{len(stories) - len(whole)} partial stories" in page and f"{len(stories)} stories from" in page
        summary = describe(store, "Db", listed=1000)
        assert (summary["stories"], summary["last_seq"]) == (len(stories), stories[-1].seq)
        assert [row["seq"] for row in summary["snapshots"]] == whole
        assert [row["seq"] for row in describe(store, "Db")["snapshots"]] == [item.seq for item in stories]
        partial = next(item for item in stories if item.kind == "partial")
        opened = client.get(f"/run/{target.id}/snapshot", params={"seq": str(partial.seq)})
        assert opened.status_code == 303 and opened.headers["location"] == f"/run/{target.id}/snapshot/{partial.seq}"
        shown = client.get(opened.headers["location"])
        assert shown.status_code == 200 and "A partial story" in shown.text
        assert client.get(f"{opened.headers['location']}/story").content == partial.text_bytes()
        assert client.get(f"/run/{target.id}/snapshot", params={"seq": "x"}).status_code == 400
