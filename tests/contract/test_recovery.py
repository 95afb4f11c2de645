"""Disaster recovery (issue 5): restoring onto a store that already holds a ledger
(``--replace``: catching up a store that is behind, repairing lost event rows), and
starting a new epoch when signed events are lost at every site (``--new-epoch``).
Real SQLite stores, real ``file://`` sites, the real ``tenure`` executable."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from support.cli import tenure
from support.shop import ACCOUNT, ACTOR
from support.sqlite import raw_sqlite
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.commands import CreateCustomer
from tenure.durability import epochs, keyrows
from tenure.durability.restore import RestoreRefused, restore
from tenure.durability.segments import SegmentName
from tenure.durability.shipping import Shipper, site_end
from tenure.durability.sites import open_site
from tenure.ledger.checkpoint import open_checkpoint
from tenure.service.ledger import Submission
from tenure.service.replay import digest_of
from tenure.store import ledger_records, records
from tenure.store.engine import create_engine, read_transaction
from tenure.store.unit import SqlStore

from .test_durability import ORIGIN, Built, build, fresh_engine, site_url


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """300 events (seed 8), snapshots at 100 and 250, segments 0-150 and 150-300."""
    return build(tmp_path_factory.mktemp("recovery"), 300, 8, (100, 250))


def data_dir_with_keys(built: Built, target: Path) -> Path:
    """A data dir holding the built store's key store and master key, no database."""
    shutil.copytree(built.data_dir / "keys", target / "keys")
    shutil.copy(built.data_dir / "master.key", target / "master.key")
    return target


def copy_of_store(built: Built, target: Path) -> Path:
    """A copy of the built data dir, database and sidecar included."""
    shutil.copytree(built.data_dir, target)
    return target


def leaves_of(data_dir: Path) -> list[bytes]:
    engine = create_engine(f"sqlite:///{data_dir / 'tenure.db'}")
    try:
        with read_transaction(engine) as conn:
            return [leaf for _, leaf in ledger_records.iter_leaves(conn, ACCOUNT)]
    finally:
        engine.dispose()


def head_of(data_dir: Path) -> records.Head:
    engine = create_engine(f"sqlite:///{data_dir / 'tenure.db'}")
    try:
        with read_transaction(engine) as conn:
            head = ledger_records.read_head(conn, ACCOUNT)
    finally:
        engine.dispose()
    assert head is not None
    return head


def append_customer(data_dir: Path, name: str, sites: str | None = None) -> Runtime:
    runtime = Runtime.open(Settings(data_dir=data_dir, **({"sites": sites} if sites else {})))
    with runtime.ledger() as ledger:
        ledger.execute(Submission(ACCOUNT, CreateCustomer(None, None, name), ACTOR))
    return runtime


# ---------------------------------------------------------------- --replace


def test_a_store_behind_a_site_catches_up_with_replace(built: Built, tmp_path: Path) -> None:
    data_dir = data_dir_with_keys(built, tmp_path / "old")
    old = fresh_engine(data_dir / "tenure.db")
    try:
        restore(built.site(), ACCOUNT, SqlStore(old), built.verifiers, at_seq=100)
    finally:
        old.dispose()
    runtime = Runtime.open(Settings(data_dir=data_dir, sites=site_url(built.site_root)))
    try:
        assert len(runtime.guard_against_sites()) == 1  # refuses to append from here
        report = restore(built.site(), ACCOUNT, runtime.store, built.verifiers, replace=True)
        assert (report.size, report.replaced, report.key_rows) == (300, 100, "kept")
        assert report.digest == built.digests[300]
        # The writer appends again, on top of the recovered events.
        with runtime.ledger() as ledger:
            ledger.execute(Submission(ACCOUNT, CreateCustomer(None, None, "after"), ACTOR))
        assert digest_of(runtime.store, ACCOUNT).size == 301
    finally:
        runtime.close()
    verified = tenure("ledger", "verify", "--data-dir", data_dir, "--output", "json")
    assert verified.code == 0, str(verified)


def test_replace_recovers_lost_event_rows_through_the_cli(built: Built, tmp_path: Path) -> None:
    data_dir = copy_of_store(built, tmp_path / "live")
    original = leaves_of(data_dir)
    db = raw_sqlite(data_dir)
    try:
        db.execute("DELETE FROM ledger_events WHERE seq IN (3, 150, 299)")
    finally:
        db.close()
    broken = tenure("ledger", "verify", "--data-dir", data_dir)
    assert broken.code != 0, str(broken)
    restored = tenure(
        "restore", "--site", site_url(built.site_root), "--replace", "--reason", "lost rows",
        "--into", f"sqlite:///{data_dir / 'tenure.db'}", "--data-dir", data_dir, "--output", "json",
    )  # fmt: skip
    assert restored.code == 0, str(restored)
    assert restored.json()["replaced"] == 300
    assert leaves_of(data_dir)[:300] == original
    verified = tenure("ledger", "verify", "--data-dir", data_dir, "--output", "json")
    assert verified.code == 0, str(verified)
    assert verified.json()["size"] == 301  # and the ledger.restored record
    record = orjson.loads(leaves_of(data_dir)[300])
    assert (record["type"], record["reason"]) == ("ledger.restored", "lost rows")
    digest = tenure("state", "digest", "--data-dir", data_dir, "--output", "json").json()
    assert digest["digest"] == built.digests[300]


def test_replace_refuses_a_fork_and_leaves_the_target_unchanged(
    built: Built, tmp_path: Path
) -> None:
    data_dir = data_dir_with_keys(built, tmp_path / "fork")
    engine = fresh_engine(data_dir / "tenure.db")
    try:
        restore(built.site(), ACCOUNT, SqlStore(engine), built.verifiers, at_seq=120)
    finally:
        engine.dispose()
    append_customer(data_dir, "only-here").close()  # event 120 differs from the site's
    before = leaves_of(data_dir)
    target = create_engine(f"sqlite:///{data_dir / 'tenure.db'}")
    try:
        with pytest.raises(RestoreRefused, match="not a prefix"):
            restore(built.site(), ACCOUNT, SqlStore(target), built.verifiers, replace=True)
    finally:
        target.dispose()
    assert leaves_of(data_dir) == before


def test_replace_refuses_to_lose_events_the_site_lacks(built: Built, tmp_path: Path) -> None:
    data_dir = copy_of_store(built, tmp_path / "ahead")
    append_customer(data_dir, "not-shipped").close()
    before = leaves_of(data_dir)
    refused = tenure(
        "restore", "--site", site_url(built.site_root), "--replace",
        "--into", f"sqlite:///{data_dir / 'tenure.db'}", "--data-dir", data_dir,
    )  # fmt: skip
    assert refused.code == 1, str(refused)
    assert "would lose events" in refused.stderr
    assert leaves_of(data_dir) == before


# ---------------------------------------------------------------- --new-epoch


def test_events_lost_everywhere_start_a_new_epoch(built: Built, tmp_path: Path) -> None:
    site_root = built.copy_site(tmp_path / "site")
    (site_root / SegmentName(150, 300).path(ACCOUNT)).unlink()  # lost at every site
    site = site_url(site_root)
    live = Runtime.open(Settings(data_dir=built.data_dir))
    try:  # the API key rows the shipper keeps at a site, signed by the ledger key
        with live.store.read() as tx:
            rows = keyrows.encode(ACCOUNT, keyrows.read_rows(tx, ACCOUNT))
        keyrows.publish(open_site(site), ACCOUNT, rows, live.ledger_signer(ACCOUNT)[1])
    finally:
        live.close()
    data_dir = data_dir_with_keys(built, tmp_path / "dr")
    into = f"sqlite:///{data_dir / 'tenure.db'}"

    refused = tenure("restore", "--site", site, "--into", into, "--data-dir", data_dir)
    assert refused.code == 1, str(refused)
    assert "--new-epoch" in refused.stderr

    started = tenure(
        "restore", "--site", site, "--into", into, "--data-dir", data_dir, "--new-epoch",
        "--reason", "segments 150-300 lost", "--output", "json",
    )  # fmt: skip
    assert started.code == 0, str(started)
    report = started.json()
    assert (report["size"], report["lost"], report["snapshot"]) == (150, 150, 100)
    assert report["key_rows"] == "site"  # the newest API keys, as for any full restore
    assert report["digest"] == built.digests[150]
    assert head_of(data_dir).origin == f"{ORIGIN}/epoch-2"

    # Its first event quotes the old log's final checkpoint, signed by the old key.
    first = orjson.loads(leaves_of(data_dir)[150])
    assert first["type"] == "ledger.epoch_started"
    assert (first["data"]["epoch"], first["data"]["kept"], first["data"]["lost"]) == (2, 150, 150)
    final = open_checkpoint(first["data"]["previous_checkpoint"], built.verifiers)
    assert (final.origin, final.size) == (ORIGIN, 300)

    verified = tenure("ledger", "verify", "--data-dir", data_dir, "--output", "json")
    assert verified.code == 0, str(verified)
    assert verified.json()["size"] == 151

    # The new epoch appends, signs under its own origin and is not held back by the
    # old epoch's larger checkpoint at the site; it ships to its own namespace.
    runtime = append_customer(data_dir, "epoch-two", sites=site)
    try:
        assert runtime.guard_against_sites() == []
        origin, signer = runtime.ledger_signer(ACCOUNT)
        assert origin == f"{ORIGIN}/epoch-2"
        Shipper(runtime.store, [open_site(site)], signer=runtime.ledger_signer).ship_once()
        live = digest_of(runtime.store, ACCOUNT)
    finally:
        runtime.close()
    assert epochs.current(open_site(site), ACCOUNT) == 2
    assert site_end(open_site(site), epochs.namespace(ACCOUNT, 2)) == live.size == 152

    # A later disaster restores the new epoch from the site.
    again = fresh_engine(tmp_path / "again.db")
    try:
        second = restore(
            open_site(site), ACCOUNT, SqlStore(again), [*built.verifiers, signer.verifier]
        )
    finally:
        again.dispose()
    assert (second.size, second.digest) == (152, live.digest)


def test_a_new_epoch_is_refused_when_nothing_is_lost(built: Built, tmp_path: Path) -> None:
    engine = fresh_engine(tmp_path / "t.db")
    try:
        with pytest.raises(RestoreRefused, match="without --new-epoch"):
            restore(built.site(), ACCOUNT, SqlStore(engine), built.verifiers, new_epoch=True)
        with read_transaction(engine) as conn:
            assert ledger_records.read_head(conn, ACCOUNT) is None
    finally:
        engine.dispose()
