"""Record payloads outside the database: a shared folder, or S3 with PostgreSQL metadata."""

from __future__ import annotations

import pytest
from sqlalchemy import text

import snapstore
from helpers import SAMPLE, corpus_dir, read_text
from snapstore import CorruptRecordError
from snapstore.store import payloads as payload_module


def test_payloads_in_a_folder_read_from_anywhere(tmp_path, store_url) -> None:
    folder = tmp_path / "payloads"
    folder.mkdir()
    db = store_url
    with snapstore.open(db, payloads=str(folder)) as store:
        store.ingest(SAMPLE)
        with store.engine.connect() as connection:
            rows = connection.execute(text("select data, location from record")).all()
    # six snapshots and kira's stderr, every one in the folder
    assert len(rows) == 7 and all(bytes(data) == b"" and location.startswith("file://") for data, location in rows)
    with snapstore.open(db, payloads=str(folder)) as store:  # the same texts as another run: reused, not rewritten
        report = store.ingest_report(SAMPLE, name="twin")
        assert report.added == 6 and len(store.run("twin")) == 6
    assert len(list(folder.rglob("*.snaprec"))) == 7
    with snapstore.open(db) as store:  # another machine: no payload setting needed to read
        run = store.run("n100-w3-s1")
        assert "".join(item.text() for item in run.snapshots()[1:]) == read_text(SAMPLE / "kira.out.gz")
        assert store.verify() == []
    first = run.snapshots()[0].record_hash  # the initial conditions: no energy is measured from them
    victim = folder / first[:2] / f"{first}.snaprec"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x04
    victim.write_bytes(bytes(data))
    with snapstore.open(db) as store:
        problems = store.verify()
        assert len(problems) == 2 and all("checksum" in p for p in problems)  # one record, shared by both runs
    victim.unlink()
    with snapstore.open(db) as store:
        with pytest.raises(CorruptRecordError, match="cannot be read"):
            [item.text() for item in store.run("n100-w3-s1").snapshots()]


def test_bad_payload_settings_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(snapstore.StoreError, match="does not exist"):
        snapstore.open(f"sqlite:///{tmp_path / 's.db'}", payloads=str(tmp_path / "nope"))
    with pytest.raises(snapstore.StoreError, match="s3://bucket/prefix"):
        snapstore.open(f"sqlite:///{tmp_path / 's.db'}", payloads="ftp://host/x")


@pytest.mark.corpus
def test_s3_payloads_with_postgresql_metadata(s3_endpoint, pg_admin, monkeypatch) -> None:
    from helpers import drop_pg, fresh_pg_url

    for name, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    payload_module._bucket.cache_clear()
    import boto3

    boto3.client("s3").create_bucket(Bucket="ensemble")
    url = fresh_pg_url(pg_admin)
    try:
        with snapstore.open(url, payloads="s3://ensemble/runs") as store:
            for run_name in ("binaries", "grid/n200-w7-s2"):
                run = store.ingest(corpus_dir() / run_name)
                texts = [item.text() for item in run.snapshots()]
                assert texts[0] == read_text(corpus_dir() / run_name / "initial.story.gz")
                assert "".join(texts[1:]) == read_text(corpus_dir() / run_name / "kira.out.gz")
            with store.engine.connect() as connection:
                locations = connection.execute(text("select location from record")).scalars().all()
            assert locations and all(loc.startswith("s3://ensemble/runs/") for loc in locations)
            assert store.verify() == []
            assert store.run("binaries").dynamics()["mass"].shape[1] == 21
    finally:
        drop_pg(pg_admin, url)


@pytest.fixture
def s3_settings(s3_endpoint, monkeypatch):
    """The moto server as the S3 service of this process's boto3 settings."""
    for name, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_MAX_ATTEMPTS": "1",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    payload_module._bucket.cache_clear()
    yield s3_endpoint
    payload_module._bucket.cache_clear()


def _free_endpoint() -> str:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_an_s3_endpoint_that_never_answers_is_an_error_within_the_timeouts(tmp_path, monkeypatch) -> None:
    pytest.importorskip("boto3")
    import socket
    import threading

    from snapstore import blobs

    monkeypatch.setattr(blobs, "S3_CONNECT_TIMEOUT", 1)
    monkeypatch.setattr(blobs, "S3_READ_TIMEOUT", 1)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(name, value)
    caught: list[BaseException] = []
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nothing ever answers
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")

        def attempt() -> None:
            try:
                snapstore.open(f"sqlite:///{tmp_path / 's.db'}", payloads="s3://bucket/runs")
            except BaseException as exc:
                caught.append(exc)

        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(20)  # boto3's own 60 s timeouts, retried, held it for minutes
        assert not worker.is_alive(), "still waiting for the endpoint after 20 s"
    assert isinstance(caught[0], snapstore.StoreURLError) and "cannot reach the S3 endpoint" in str(caught[0])
    assert "\n" not in str(caught[0])


@pytest.mark.parametrize("setting, message", [
    ({}, "no bucket 'nobucket' at http://127.0.0.1"),
    ({"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
      "AWS_CONFIG_FILE": "/nonexistent"}, "no S3 credentials: set AWS_ACCESS_KEY_ID"),
    ({"AWS_ENDPOINT_URL": "unreachable"}, "cannot reach the S3 endpoint"),
], ids=["no bucket", "no credentials", "no service"])
def test_s3_settings_that_cannot_work_are_one_line_and_leave_no_run(s3_settings, store_url, monkeypatch,
                                                                    setting, message) -> None:
    import boto3
    from typer.testing import CliRunner

    from snapstore.cli import app
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a session keeps the credentials it found first
    for name, value in setting.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, _free_endpoint() if value == "unreachable" else value)
    result = CliRunner().invoke(app, ["ingest", str(SAMPLE), "--payloads", "s3://nobucket/runs", "--db", store_url])
    assert isinstance(result.exception, snapstore.StoreURLError) and message in str(result.exception)
    assert "\n" not in str(result.exception)
    with snapstore.open(store_url) as store:
        assert store.stats()["events"] == 0


def test_an_s3_payload_is_read_from_the_service_that_holds_it(s3_settings, tmp_path, monkeypatch) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket="ours")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with snapstore.open(url, payloads="s3://ours/runs") as store:
        store.ingest(SAMPLE)
        with store.engine.connect() as connection:
            locations = connection.execute(text("select location from record")).scalars().all()
    assert all(location.endswith("?endpoint=" + s3_settings.replace(":", "%3A").replace("/", "%2F"))
               for location in locations)
    monkeypatch.setenv("AWS_ENDPOINT_URL", _free_endpoint())  # a colleague's settings name another service
    payload_module._bucket.cache_clear()
    with snapstore.open(url) as store:
        assert "".join(item.text() for item in store.run("n100-w3-s1").snapshots()[1:]) == \
            read_text(SAMPLE / "kira.out.gz")


def test_an_ingest_that_stores_nothing_leaves_no_run_and_one_that_stored_some_says_where_it_stopped(
        store_url, tmp_path, monkeypatch) -> None:
    from snapstore import StoreAccessError

    folder = tmp_path / "payloads"
    folder.mkdir()
    calls = []
    put = payload_module.ExternalPayloads.put

    def failing(self, record_hash, data, after):
        calls.append(record_hash)
        if len(calls) > after:
            raise StoreAccessError("the payload storage went away")
        return put(self, record_hash, data)

    with snapstore.open(store_url, payloads=str(folder)) as store:
        monkeypatch.setattr(payload_module.ExternalPayloads, "put", lambda *a: failing(*a, after=0))
        with pytest.raises(StoreAccessError):
            store.ingest(SAMPLE)
        assert store.stats()["events"] == 0 and store.runs() == []
        calls.clear()
        monkeypatch.setattr(payload_module.ExternalPayloads, "put", lambda *a: failing(*a, after=2))
        with pytest.raises(StoreAccessError):
            store.ingest(SAMPLE)
        run = store.run("n100-w3-s1")
        assert (run.status, len(run.stories())) == ("incomplete", 2) and "went away" in run.error
