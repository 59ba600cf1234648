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
    assert len(rows) == 6 and all(bytes(data) == b"" and location.startswith("file://") for data, location in rows)
    with snapstore.open(db, payloads=str(folder)) as store:  # the same texts as another run: reused, not rewritten
        report = store.ingest_report(SAMPLE, name="twin")
        assert report.added == 6 and len(store.run("twin")) == 6
    assert len(list(folder.rglob("*.snaprec"))) == 6
    with snapstore.open(db) as store:  # another machine: no payload setting needed to read
        run = store.run("n100-w3-s1")
        assert "".join(item.text() for item in run.snapshots()[1:]) == read_text(SAMPLE / "kira.out.gz")
        assert store.verify() == []
    victim = sorted(folder.rglob("*.snaprec"))[0]
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
