"""Durability contract (issue 5): ledger segments, snapshots and proven restores, on
real SQLite stores and real sites (``file://`` in temporary directories, ``s3://``
on a moto server), through the real ``tenure`` executable where an operator would
use it. A restore may refuse, or fall back to an older snapshot or to genesis; it
must never produce a state that differs from the live one."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import shutil
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from support.cli import seed_args, tenure
from support.leaves import read_leaves
from support.shop import ACCOUNT, ACTOR, Runtimes, Shop
from support.sqlite import raw_sqlite
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.commands import CreateCustomer
from tenure.domain.state import MemoryState
from tenure.durability import segments, snapshots
from tenure.durability.restore import RestoreRefused, RestoreReport, restore
from tenure.durability.segments import BadSegment, SegmentName
from tenure.durability.shipping import Shipper, site_end
from tenure.durability.sites import Site, open_site
from tenure.errors import LedgerTampered, StoreBehindCheckpoint, TenureError
from tenure.ledger.note import NoteSigner, NoteVerifier
from tenure.service.apikeys import create_api_key
from tenure.service.demo import demo_submissions
from tenure.service.ledger import Submission
from tenure.service.replay import digest_of
from tenure.store import ledger_records
from tenure.store.engine import create_engine, read_transaction
from tenure.store.migrations import upgrade
from tenure.store.unit import SqlStore

ORIGIN = f"tenure.localhost/ledger/{ACCOUNT}"


# ---------------------------------------------------------------- helpers


def site_url(path: Path) -> str:
    return path.resolve().as_uri()


def fresh_engine(path: Path) -> sa.Engine:
    """An empty, migrated database to restore into."""
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    return engine


def holds_ledger(engine: sa.Engine) -> bool:
    with read_transaction(engine) as conn:
        return ledger_records.read_head(conn, ACCOUNT) is not None


def flip_byte(site_root: Path, relative: str, position: int) -> None:
    path = site_root / relative
    data = bytearray(path.read_bytes())
    data[position % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


class Extra(Shop):
    """A small workload of its own (names that the demo seed never uses)."""

    PRODUCT = "backup-tool"
    PLAN = "backup-tool-pro"

    def grow(self, licenses: int) -> None:
        for _ in range(licenses):
            customer = self.customer(uuid.uuid4().hex[:12])
            self.license(customer, uuid.uuid4().hex)


@dataclasses.dataclass
class Built:
    """A store built in-process, what it looked like at every size, and its site."""

    data_dir: Path
    site_root: Path
    digests: dict[int, str]
    size: int
    snapshot_sizes: list[int]
    verifiers: list[NoteVerifier]

    def site(self) -> Site:
        return open_site(site_url(self.site_root))

    def copy_site(self, target: Path) -> Path:
        shutil.copytree(self.site_root, target)
        return target


def build(root: Path, events: int, seed: int, snapshot_at: tuple[int, ...]) -> Built:
    """Append the demo workload one submission at a time through the real ledger
    writer, recording the state digest at every size; take snapshots at
    ``snapshot_at`` and ship twice (half way and at the end), so the site holds two
    segments, two snapshots and the final signed checkpoint."""
    data_dir, site_root = root / "data", root / "site"
    runtime = Runtime.open(Settings(data_dir=data_dir))
    site = open_site(site_url(site_root))
    signer = runtime.keystore.ledger_signer(ORIGIN)
    shipper = Shipper(runtime.store, [site], signer=runtime.ledger_signer)
    digests: dict[int, str] = {0: MemoryState().digest()}
    try:
        with runtime.ledger() as ledger:
            for sub in demo_submissions(events, seed):
                ledger.execute(sub)
                report = digest_of(runtime.store, ACCOUNT)
                digests[report.size] = report.digest
                if report.size in snapshot_at and report.size not in _snapshotted(site):
                    taken = snapshots.take(runtime.store, ACCOUNT, ORIGIN, signer)
                    snapshots.publish(taken, signer, [site])
                if report.size == events // 2 and site_end(site, ACCOUNT) == 0:
                    shipper.ship_once()
        # The writer signed a checkpoint of the whole ledger on close.
        shipper.ship_once()
        size = digest_of(runtime.store, ACCOUNT).size
    finally:
        runtime.close()
    assert sorted(digests) == list(range(size + 1))
    assert site_end(site, ACCOUNT) == size
    return Built(
        data_dir,
        site_root,
        digests,
        size,
        sorted(_snapshotted(site)),
        [signer.verifier],
    )


def _snapshotted(site: Site) -> set[int]:
    return {size for size, _ in snapshots.listed(site, ACCOUNT)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """300 events of the demo workload (seed 5), snapshots at 100 and 250, segments
    0-150 and 150-300, the site's checkpoint at 300."""
    done = build(tmp_path_factory.mktemp("built"), 300, 5, (100, 250))
    assert done.snapshot_sizes == [100, 250]
    names = [segments.parse_name(p) for p in done.site().list(f"{ACCOUNT}/segments/")]
    assert names == [SegmentName(0, 150), SegmentName(150, 300)]
    return done


@pytest.fixture
def site_copy(built: Built, tmp_path: Path) -> Path:
    """A private copy of the built site, to damage."""
    return built.copy_site(tmp_path / "site")


def restore_into(site_root: Path, target: Path, built: Built, **kw: int) -> RestoreReport:
    return restore(
        open_site(site_url(site_root)),
        ACCOUNT,
        SqlStore(fresh_engine(target)),
        built.verifiers,
        **kw,
    )


def assert_refused_and_empty(
    site_root: Path, target: Path, built: Built, *errors: type[TenureError]
) -> TenureError:
    engine = fresh_engine(target)
    with pytest.raises(errors) as caught:
        restore(open_site(site_url(site_root)), ACCOUNT, SqlStore(engine), built.verifiers)
    assert not holds_ledger(engine), "a refused restore left a ledger behind"
    return caught.value


def assert_right_state(target: Path, built: Built, report: RestoreReport) -> None:
    engine = create_engine(f"sqlite:///{target}")
    live = digest_of(SqlStore(engine), ACCOUNT)
    assert (live.size, live.digest) == (built.size, built.digests[built.size])
    assert (report.size, report.digest) == (built.size, built.digests[built.size])


# ---------------------------------------------------------------- segment format

ACCOUNTS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)


def leaves_for(account: str, first: int, payloads: list[str]) -> list[bytes]:
    return [
        orjson.dumps({"account": account, "data": {"note": text}, "seq": first + i})
        for i, text in enumerate(payloads)
    ]


segment_cases = st.builds(
    lambda account, first, payloads: (account, first, leaves_for(account, first, payloads)),
    ACCOUNTS,
    st.integers(min_value=0, max_value=10**12),
    st.lists(st.text(max_size=40), min_size=1, max_size=12),
)


@given(segment_cases)
def test_segment_round_trip(case: tuple[str, int, list[bytes]]) -> None:
    account, first, leaves = case
    name = SegmentName(first, first + len(leaves))
    assert segments.parse_name(name.path(account)) == name
    assert segments.decode(segments.encode(account, first, leaves), account, name) == leaves


def test_segment_round_trip_of_real_events(built: Built) -> None:
    exported = tenure("ledger", "export", "--data-dir", built.data_dir)
    assert exported.code == 0, str(exported)
    leaves = read_leaves(exported.stdout)
    assert len(leaves) == built.size
    data = segments.encode(ACCOUNT, 10, leaves[10:60])
    assert segments.decode(data, ACCOUNT, SegmentName(10, 60)) == leaves[10:60]
    # What the shipper wrote is exactly the ledger.
    stored = (built.site_root / SegmentName(0, 150).path(ACCOUNT)).read_bytes()
    assert stored == segments.encode(ACCOUNT, 0, leaves[:150])


@given(segment_cases, st.data())
def test_any_truncation_is_a_bad_segment(
    case: tuple[str, int, list[bytes]], data: st.DataObject
) -> None:
    account, first, leaves = case
    encoded = segments.encode(account, first, leaves)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(BadSegment):
        segments.decode(encoded[:cut], account, SegmentName(first, first + len(leaves)))


@given(segment_cases, st.data())
def test_any_flipped_byte_is_a_bad_segment(
    case: tuple[str, int, list[bytes]], data: st.DataObject
) -> None:
    account, first, leaves = case
    encoded = bytearray(segments.encode(account, first, leaves))
    position = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(BadSegment):
        segments.decode(bytes(encoded), account, SegmentName(first, first + len(leaves)))


@given(segment_cases)
def test_a_segment_is_refused_under_another_name_or_account(
    case: tuple[str, int, list[bytes]],
) -> None:
    account, first, leaves = case
    encoded = segments.encode(account, first, leaves)
    end = first + len(leaves)
    for name in (SegmentName(first + 1, end + 1), SegmentName(first, end + 1)):
        with pytest.raises(BadSegment):
            segments.decode(encoded, account, name)
    with pytest.raises(BadSegment):
        segments.decode(encoded, account + "x", SegmentName(first, end))


@given(segment_cases, st.data())
def test_a_checksummed_segment_with_a_wrong_seq_or_account_is_refused(
    case: tuple[str, int, list[bytes]], data: st.DataObject
) -> None:
    account, first, leaves = case
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    event = orjson.loads(leaves[index])
    if data.draw(st.booleans()):
        event["seq"] += data.draw(st.sampled_from([-1, 1, 7]))
    else:
        event["account"] += "x"
    altered = [*leaves[:index], orjson.dumps(event), *leaves[index + 1 :]]
    with pytest.raises(BadSegment):
        segments.decode(
            segments.encode(account, first, altered),
            account,
            SegmentName(first, first + len(leaves)),
        )


ranges = st.lists(
    st.tuples(st.integers(min_value=0, max_value=30), st.integers(min_value=1, max_value=12)).map(
        lambda fl: SegmentName(fl[0], fl[0] + fl[1])
    ),
    max_size=25,
)


@given(ranges, st.randoms())
def test_contiguous_is_the_longest_gap_free_run_from_zero(
    names: list[SegmentName], shuffler: random.Random
) -> None:
    shuffler.shuffle(names)
    run = segments.contiguous(names)
    # Gap-free from 0, made of the given segments.
    position = 0
    for name in run:
        assert name in names
        assert name.first == position
        position = name.end
    # As far as anything reaches from 0.
    reachable = {0}
    changed = True
    while changed:
        changed = False
        for name in names:
            if name.first in reachable and name.end not in reachable:
                reachable.add(name.end)
                changed = True
    assert position == max(reachable)
    # The order the site lists them in does not matter.
    assert (run[-1].end if run else 0) == (
        segments.contiguous(sorted(names, key=lambda n: (-n.first, -n.end)))[-1].end if run else 0
    )


# ---------------------------------------------------------------- restore through the CLI


def test_ship_snapshot_more_ship_restore_through_the_cli(
    tmp_path: Path, data_dir: Path, runtimes: Runtimes
) -> None:
    site = site_url(tmp_path / "site")
    seeded = tenure(*seed_args(data_dir, 200, 11))
    assert seeded.code == 0, str(seeded)
    for args in (
        ("ship", "--data-dir", data_dir, "--site", site),
        ("snapshot", "create", "--data-dir", data_dir, "--site", site),
    ):
        done = tenure(*args, "--output", "json")
        assert done.code == 0, str(done)
    runtime = runtimes.open(data_dir)
    with runtime.ledger() as ledger:
        extra = Extra(ledger)
        extra.catalog()
        extra.grow(10)
        ledger.execute(extra.submission(CreateCustomer("Late", "late@example.test", "late")))
    runtimes.close_all()
    shipped = tenure("ship", "--data-dir", data_dir, "--site", site, "--output", "json")
    assert shipped.code == 0, str(shipped)
    live = tenure("state", "digest", "--data-dir", data_dir, "--output", "json").json()
    assert live["size"] == 200 + 2 + 10 * 2 + 1

    target_dir = tmp_path / "restored"
    target_dir.mkdir()
    restored = tenure(
        "restore",
        "--site",
        site,
        "--into",
        f"sqlite:///{target_dir / 'tenure.db'}",
        "--data-dir",
        data_dir,
        "--output",
        "json",
    )
    assert restored.code == 0, str(restored)
    report = restored.json()
    assert report["snapshot"] == 200, report
    assert (report["size"], report["signed_size"], report["digest"]) == (
        live["size"],
        live["size"],
        live["digest"],
    )
    after = tenure("state", "digest", "--data-dir", target_dir, "--output", "json").json()
    assert_restored_as(live, after, target_dir)
    verified = tenure("ledger", "verify", "--data-dir", target_dir, "--output", "json")
    assert verified.code == 0, str(verified)
    assert verified.json()["ok"] is True
    listed = tenure("snapshot", "list", "--site", site, "--output", "json").json()
    assert [s["size"] for s in listed["snapshots"]] == [200]
    checked = tenure("snapshot", "verify", "--site", site, "--data-dir", data_dir)
    assert checked.code == 0, str(checked)


def test_restore_after_losing_the_database_with_the_data_dir_keys(
    tmp_path: Path, data_dir: Path
) -> None:
    """The disaster: the database is gone, the data dir's key store is not; the
    restore needs only the latter (a regression: it used to open the database)."""
    site = site_url(tmp_path / "site")
    assert tenure(*seed_args(data_dir, 50, 2)).code == 0
    before = tenure("state", "digest", "--data-dir", data_dir, "--output", "json").json()
    assert tenure("ship", "--data-dir", data_dir, "--site", site).code == 0
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"tenure.db{suffix}").unlink(missing_ok=True)
    restored = tenure(
        "restore", "--site", site, "--into", f"sqlite:///{data_dir / 'tenure.db'}",
        "--data-dir", data_dir,
    )  # fmt: skip
    assert restored.code == 0, str(restored)
    after = tenure("state", "digest", "--data-dir", data_dir, "--output", "json").json()
    assert_restored_as(before, after, data_dir)


def assert_restored_as(before: dict[str, Any], after: dict[str, Any], data_dir: Path) -> None:
    """The same state, one event more: the ledger.restored event a full restore appends."""
    assert after == {**before, "size": before["size"] + 1}
    last = tenure("ledger", "export", "--start", str(before["size"]), "--data-dir", data_dir)
    assert last.code == 0, str(last)
    [event] = [json.loads(line) for line in last.stdout.splitlines()]
    assert event["type"] == "ledger.restored"
    assert event["data"]["size"] == before["size"]
    assert event["data"]["digest"] == before["digest"]


# ---------------------------------------------------------------- point in time


def test_point_in_time_restores_equal_the_state_recorded_at_that_size(
    built: Built, tmp_path: Path
) -> None:
    rng = random.Random(20261129)
    sizes = sorted(
        {0, 1, 99, 100, 101, 149, 150, 151, 250, built.size}
        | set(rng.sample(range(built.size + 1), 40))
    )
    for n in sizes:
        target = tmp_path / f"at-{n}.db"
        report = restore_into(built.site_root, target, built, at_seq=n)
        expected_snapshot = max((s for s in built.snapshot_sizes if s <= n), default=None)
        assert report.snapshot == expected_snapshot, n
        assert report.signed_size == built.size
        engine = create_engine(f"sqlite:///{target}")
        with read_transaction(engine) as conn:
            head = ledger_records.read_head(conn, ACCOUNT)
            assert head is not None
            assert head.size == n
        assert digest_of(SqlStore(engine), ACCOUNT).digest == built.digests[n], n
        assert report.digest == built.digests[n]
        engine.dispose()


def test_restore_past_what_the_site_holds_is_refused(built: Built, tmp_path: Path) -> None:
    engine = fresh_engine(tmp_path / "t.db")
    with pytest.raises(RestoreRefused):
        restore(built.site(), ACCOUNT, SqlStore(engine), built.verifiers, at_seq=built.size + 1)
    assert not holds_ledger(engine)


# ---------------------------------------------------------------- damage at the site


def newest_snapshot(site_root: Path) -> str:
    return snapshots.listed(open_site(site_url(site_root)), ACCOUNT)[0][1]


def test_a_damaged_newest_snapshot_is_skipped_for_an_older_one(
    built: Built, site_copy: Path, tmp_path: Path
) -> None:
    newest = newest_snapshot(site_copy)
    flip_byte(site_copy, newest, 1000)
    report = restore_into(site_copy, tmp_path / "t.db", built)
    assert report.snapshot == 100
    assert [s.split(":")[0] for s in report.skipped_snapshots] == [newest]
    assert_right_state(tmp_path / "t.db", built, report)


def test_with_every_snapshot_damaged_the_restore_replays_from_genesis(
    built: Built, site_copy: Path, tmp_path: Path
) -> None:
    for _, path in snapshots.listed(open_site(site_url(site_copy)), ACCOUNT):
        flip_byte(site_copy, path + ".sig", -20)  # the signature line
    report = restore_into(site_copy, tmp_path / "t.db", built)
    assert report.snapshot is None
    assert len(report.skipped_snapshots) == 2
    assert_right_state(tmp_path / "t.db", built, report)


def test_a_snapshot_without_its_signature_note_is_ignored(
    built: Built, site_copy: Path, tmp_path: Path
) -> None:
    newest = newest_snapshot(site_copy)
    (site_copy / (newest + ".sig")).unlink()  # killed between the body and the note
    # … and a half-written body of a later one, never signed.
    (site_copy / f"{ACCOUNT}/snapshots/{300:020d}-{'0' * 64}.snap").write_bytes(b"\x1f\x8b")
    report = restore_into(site_copy, tmp_path / "t.db", built)
    assert report.snapshot == 100
    assert report.skipped_snapshots == ()
    assert_right_state(tmp_path / "t.db", built, report)


def test_a_snapshot_signed_by_another_key_is_skipped(
    built: Built, site_copy: Path, tmp_path: Path
) -> None:
    # A forged, later-looking snapshot with a wrong state, signed (note and checkpoint)
    # by a key of the right name that the restore does not trust.
    genuine = snapshots.load(
        open_site(site_url(site_copy)), newest_snapshot(site_copy), ACCOUNT, built.verifiers
    )
    tables = {name: rows[1:] for name, rows in genuine.tables.items()}
    forger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    from tenure.ledger.checkpoint import Checkpoint, sign_checkpoint

    forged = dataclasses.replace(
        genuine,
        size=built.size,
        tables=tables,
        digest=snapshots.digest_of_tables(tables),
        checkpoint=sign_checkpoint(Checkpoint(ORIGIN, built.size, genuine.root), [forger]),
    )
    path = snapshots.publish(forged, forger, [open_site(site_url(site_copy))])
    report = restore_into(site_copy, tmp_path / "t.db", built)
    assert report.snapshot == 250
    assert [s.split(":")[0] for s in report.skipped_snapshots] == [path]
    assert_right_state(tmp_path / "t.db", built, report)


def test_a_truncated_segment_is_refused(built: Built, site_copy: Path, tmp_path: Path) -> None:
    path = site_copy / SegmentName(0, 150).path(ACCOUNT)
    path.write_bytes(path.read_bytes()[:-30])
    error = assert_refused_and_empty(site_copy, tmp_path / "t.db", built, RestoreRefused)
    assert "0-150" in error.message


def test_a_missing_newest_segment_is_refused(built: Built, site_copy: Path, tmp_path: Path) -> None:
    (site_copy / SegmentName(150, 300).path(ACCOUNT)).unlink()
    assert site_end(open_site(site_url(site_copy)), ACCOUNT) == 150
    assert_refused_and_empty(site_copy, tmp_path / "t.db", built, RestoreRefused)
    # Not even the events the site still holds: its checkpoint says it held more.
    engine = fresh_engine(tmp_path / "u.db")
    with pytest.raises(RestoreRefused):
        restore(
            open_site(site_url(site_copy)), ACCOUNT, SqlStore(engine), built.verifiers, at_seq=120
        )
    assert not holds_ledger(engine)


@pytest.mark.parametrize(
    ("segment", "seq"), [(SegmentName(0, 150), 42), (SegmentName(150, 300), 280)]
)
def test_an_altered_leaf_with_a_recomputed_checksum_is_tampering(
    built: Built, site_copy: Path, tmp_path: Path, segment: SegmentName, seq: int
) -> None:
    path = site_copy / segment.path(ACCOUNT)
    leaves = segments.decode(path.read_bytes(), ACCOUNT, segment)
    event = orjson.loads(leaves[seq - segment.first])
    event["time"] = "2001-01-01T00:00:00Z"
    leaves[seq - segment.first] = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    path.write_bytes(segments.encode(ACCOUNT, segment.first, leaves))  # a valid segment
    assert_refused_and_empty(site_copy, tmp_path / "t.db", built, LedgerTampered)
    # Also when no snapshot vouches for the prefix: the signed checkpoint does.
    shutil.rmtree(site_copy / ACCOUNT / "snapshots")
    assert_refused_and_empty(site_copy, tmp_path / "u.db", built, LedgerTampered)


def test_a_checkpoint_signed_by_another_key_is_refused(
    built: Built, site_copy: Path, tmp_path: Path
) -> None:
    from tenure.ledger.checkpoint import Checkpoint, sign_checkpoint

    forger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    note = sign_checkpoint(Checkpoint(ORIGIN, 10, b"\x00" * 32), [forger])
    (site_copy / ACCOUNT / "checkpoint").write_text(note)
    assert_refused_and_empty(site_copy, tmp_path / "t.db", built, TenureError)


# ---------------------------------------------------------------- the target


def test_restoring_into_a_database_that_holds_the_ledger_is_refused(
    built: Built, tmp_path: Path
) -> None:
    target = tmp_path / "t.db"
    restore_into(built.site_root, target, built, at_seq=120)
    engine = create_engine(f"sqlite:///{target}")
    before = digest_of(SqlStore(engine), ACCOUNT)
    with read_transaction(engine) as conn:
        events_before = len(list(ledger_records.iter_leaves(conn, ACCOUNT, 0, before.size)))
    with pytest.raises(RestoreRefused):
        restore(built.site(), ACCOUNT, SqlStore(engine), built.verifiers)
    assert digest_of(SqlStore(engine), ACCOUNT) == before
    with read_transaction(engine) as conn:
        assert ledger_records.read_head(conn, ACCOUNT).size == 120  # type: ignore[union-attr]
        assert len(list(ledger_records.iter_leaves(conn, ACCOUNT, 0, 400))) == events_before
    # The live store itself, through the CLI: refused, unchanged.
    live = tenure("state", "digest", "--data-dir", built.data_dir, "--output", "json").json()
    refused = tenure(
        "restore", "--site", site_url(built.site_root),
        "--into", f"sqlite:///{built.data_dir / 'tenure.db'}", "--data-dir", built.data_dir,
    )  # fmt: skip
    assert refused.code not in (0, 2), str(refused)
    assert "already holds" in refused.stderr
    assert (
        tenure("state", "digest", "--data-dir", built.data_dir, "--output", "json").json() == live
    )


# ---------------------------------------------------------------- S3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on a loopback port and a bucket; yields the bucket name."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(name, value)
    import boto3

    boto3.client("s3").create_bucket(Bucket="tenure-backups")
    try:
        yield "tenure-backups"
    finally:
        server.stop()


def test_ship_snapshot_and_restore_through_s3(s3: str, tmp_path: Path, data_dir: Path) -> None:
    site = f"s3://{s3}/prod/eu"
    assert tenure(*seed_args(data_dir, 120, 4)).code == 0
    shipped = tenure("ship", "--data-dir", data_dir, "--site", site, "--output", "json")
    assert shipped.code == 0, str(shipped)
    assert shipped.json()["shipped"] == {site: 120}
    created = tenure("snapshot", "create", "--data-dir", data_dir, "--site", site)
    assert created.code == 0, str(created)
    import boto3

    keys = {
        o["Key"]
        for o in boto3.client("s3").list_objects_v2(Bucket=s3, Prefix="prod/eu/")["Contents"]
    }
    assert f"prod/eu/{ACCOUNT}/checkpoint" in keys
    assert f"prod/eu/{ACCOUNT}/segments/{0:020d}-{120:020d}.seg" in keys
    assert sum(k.endswith(".snap.sig") for k in keys) == 1

    live = tenure("state", "digest", "--data-dir", data_dir, "--output", "json").json()
    target = tmp_path / "restored"
    target.mkdir()
    restored = tenure(
        "restore", "--site", site, "--into", f"sqlite:///{target / 'tenure.db'}",
        "--data-dir", data_dir, "--output", "json",
    )  # fmt: skip
    assert restored.code == 0, str(restored)
    assert restored.json()["snapshot"] == 120
    after = tenure("state", "digest", "--data-dir", target, "--output", "json").json()
    assert_restored_as(live, after, target)
    assert tenure("ledger", "verify", "--data-dir", target).code == 0


def test_point_in_time_by_moment_restores_the_events_up_to_it(
    built: Built, site_copy: Path, tmp_path: Path
) -> None:
    leaves = [
        json.loads(leaf)
        for leaf in tenure("ledger", "export", "--data-dir", built.data_dir).stdout.splitlines()
    ]
    cut = 137
    moment = datetime.fromisoformat(leaves[cut - 1]["time"].replace("Z", "+00:00"))
    target = fresh_engine(tmp_path / "at-time.db")
    try:
        report = restore(
            open_site(site_url(site_copy)),
            ACCOUNT,
            SqlStore(target),
            built.verifiers,
            at_time=moment,
        )
    finally:
        target.dispose()
    # Several events may share one moment: the restore ends after the last of them.
    same = [n for n, event in enumerate(leaves) if event["time"] == leaves[cut - 1]["time"]]
    assert report.size == same[-1] + 1
    assert report.digest == built.digests[report.size]


def test_a_store_behind_a_site_refuses_to_append_until_restored(
    built: Built, site_copy: Path, tmp_path: Path
) -> None:
    # An old copy of the store: its first 100 events, through a point-in-time restore,
    # with the keys of the original data dir and no sidecar.
    data_dir = tmp_path / "old"
    shutil.copytree(built.data_dir / "keys", data_dir / "keys")
    shutil.copy(built.data_dir / "master.key", data_dir / "master.key")
    old = fresh_engine(data_dir / "tenure.db")
    try:
        restore(open_site(site_url(site_copy)), ACCOUNT, SqlStore(old), built.verifiers, at_seq=100)
    finally:
        old.dispose()
    settings = Settings(data_dir=data_dir, sites=site_url(site_copy))
    runtime = Runtime.open(settings)
    try:
        found = runtime.guard_against_sites()
        assert len(found) == 1
        assert "holds a checkpoint of 300 events, this store 100" in found[0]
        assert runtime.guard_against_sites() == []  # already guarded
        with runtime.ledger() as ledger, pytest.raises(StoreBehindCheckpoint):
            ledger.execute(Submission(ACCOUNT, CreateCustomer(None, None, "after-the-fact"), ACTOR))
    finally:
        runtime.close()


def test_a_drill_catches_a_damaged_projection_and_passes_after_a_rebuild(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "live"
    site = site_url(tmp_path / "site")
    assert tenure(*seed_args(data_dir, 400, 6)).code == 0
    assert tenure("ship", "--data-dir", data_dir, "--site", site).code == 0
    passed = tenure("drill", "--site", site, "--data-dir", data_dir, "--output", "json")
    assert passed.code == 0, str(passed)
    assert passed.json()["passed"] is True
    assert (passed.json()["rpo_events"], passed.json()["restored_size"]) == (0, 400)
    db = raw_sqlite(data_dir)
    try:  # the projection loses three licenses; the ledger is intact
        db.execute(
            "DELETE FROM proj_licenses WHERE serial IN "
            "(SELECT serial FROM proj_licenses ORDER BY serial LIMIT 3)"
        )
    finally:
        db.close()
    failed = tenure("drill", "--site", site, "--data-dir", data_dir, "--output", "json")
    assert failed.code == 1
    assert "differs from the live state" in failed.json()["detail"]
    repaired = tenure("state", "rebuild", "--accept-change", "--data-dir", data_dir)
    assert repaired.code == 0, str(repaired)
    again = tenure("drill", "--site", site, "--data-dir", data_dir, "--output", "json")
    assert again.code == 0, str(again)
    audited = tenure("audit", "verify", "--data-dir", data_dir, "--output", "json")
    assert audited.code == 0, str(audited)


def test_api_keys_made_after_the_snapshot_come_back_from_the_signed_key_rows(
    tmp_path: Path,
) -> None:
    data_dir, site_root = tmp_path / "live", tmp_path / "site"
    site = site_url(site_root)
    assert tenure(*seed_args(data_dir, 60, 8)).code == 0
    assert tenure("snapshot", "create", "--data-dir", data_dir, "--site", site).code == 0
    engine = create_engine(f"sqlite:///{data_dir / 'tenure.db'}")
    try:
        late, _ = create_api_key(SqlStore(engine), ACCOUNT, "issuer", "made after the snapshot")
    finally:
        engine.dispose()
    assert tenure("ship", "--data-dir", data_dir, "--site", site).code == 0

    def restored_keys(name: str) -> tuple[dict[str, Any], set[str]]:
        target = tmp_path / f"{name}.db"
        done = tenure(
            "restore", "--site", site, "--into", f"sqlite:///{target}",
            "--data-dir", data_dir, "--output", "json",
        )  # fmt: skip
        assert done.code == 0, str(done)
        with raw_sqlite_file(target) as db:
            ids = {row[0] for row in db.execute("SELECT id FROM api_keys")}
        return done.json(), ids

    report, ids = restored_keys("from-site")
    assert report["key_rows"] == "site"
    assert late.id in ids
    # Someone who can write to the site plants a key: the note no longer vouches.
    body = json.loads((site_root / ACCOUNT / "keys.json").read_bytes())
    body["rows"]["api_keys"].append({**body["rows"]["api_keys"][0], "id": "key_planted"})
    (site_root / ACCOUNT / "keys.json").write_bytes(json.dumps(body).encode())
    report, ids = restored_keys("tampered")
    assert report["key_rows"] == "snapshot"
    assert any("keys.json" in skipped for skipped in report["skipped_snapshots"])
    assert "key_planted" not in ids
    assert late.id not in ids  # only what the snapshot vouches for


@contextlib.contextmanager
def raw_sqlite_file(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path)
    try:
        yield db
    finally:
        db.close()
