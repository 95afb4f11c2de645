"""Customers' data keys live in the database (docs/personal-data.md): they travel with
``tenure migrate``, and with any copy of the database, yet a key of an erased customer
never comes back. The erasure is a ledger event; every path that brings keys in (the
start of a service, a migration, the import of 0.2.0's key files) deletes the keys of
the customers the ledger says are erased.

Each scenario keeps the wrapped key row of a customer from before its erasure (what a
database backup taken then holds) and puts it back after the erasure."""

from __future__ import annotations

import base64
import time
from contextlib import closing
from pathlib import Path

import pytest

from support.cli import tenure
from support.postgres import pg_url
from support.shop import ACCOUNT, ACTOR, Runtimes, Shop
from support.sqlite import raw_sqlite
from tenure.app.runtime import Runtime
from tenure.crypto.datakeys import DataKeyWrap
from tenure.crypto.keystore import load_master_key
from tenure.domain.commands import EraseCustomer
from tenure.errors import ConfigurationError
from tenure.service.apikeys import Principal
from tenure.service.handlers import licensing as cases
from tenure.service.ledger import Submission
from tenure.store.data_keys import StoredDataKey
from tenure.store.databases import open_store

OPERATOR = Principal("cli:ops", ACCOUNT, "admin", "local")


def customers(runtime: Runtime, *names: str) -> list[str]:
    """A catalog and one customer per name (its external id): their ids."""
    with runtime.ledger() as ledger:
        shop = Shop(ledger)
        shop.catalog()
        return [shop.customer(name) for name in names]


def erase(runtime: Runtime, customer: str) -> StoredDataKey:
    """Erase ``customer``; return its wrapped key as the database held it before."""
    assert runtime.personal is not None
    with runtime.store.read() as tx:
        old = tx.data_keys.get(ACCOUNT, customer)
    assert old is not None
    with runtime.ledger() as ledger:
        done = cases.erase_customer(
            ledger.execute, runtime.store, runtime.personal, OPERATOR, customer, "asked"
        )
    assert done["key_destroyed"] is True
    return old


def put_back(url: str, key: StoredDataKey) -> None:
    """The key row comes back, as from a backup taken before the erasure."""
    with open_store(url) as store, store.write() as tx:
        assert tx.data_keys.add(ACCOUNT, key)


def keys_at(url: str) -> list[str]:
    with open_store(url) as store, store.read() as tx:
        return tx.data_keys.customers(ACCOUNT)


def shown(runtime: Runtime, customer: str) -> tuple[str | None, bool]:
    assert runtime.personal is not None
    found = runtime.personal.read_customer(runtime.store, ACCOUNT, customer)
    return found["name"], found["erased"]


@pytest.fixture
def ends(tmp_path: Path, pg_database: str) -> tuple[Path, str, str]:
    """A migration's data dir, its SQLite source and its PostgreSQL target."""
    data_dir = tmp_path / "data"
    return data_dir, f"sqlite:///{(data_dir / 'tenure.db').as_posix()}", pg_url(pg_database)


def test_migrate_carries_the_keys_but_not_an_erased_customers_restored_key(
    ends: tuple[Path, str, str], runtimes: Runtimes
) -> None:
    data_dir, source, target = ends
    runtime = runtimes.open(data_dir)
    kept, gone = customers(runtime, "kept", "gone")
    old = erase(runtime, gone)
    runtimes.close_all()
    put_back(source, old)
    assert keys_at(source) == sorted([kept, gone])

    done = tenure("migrate", "--from", source, "--to", target)
    assert done.code == 0, str(done)
    assert keys_at(target) == [kept]
    runtime = runtimes.open(data_dir, database_url=target)
    assert shown(runtime, kept) == ("Customer kept", False)
    assert shown(runtime, gone) == (None, True)


def test_dual_write_mirrors_new_keys_and_erasures_to_the_target(
    ends: tuple[Path, str, str], runtimes: Runtimes
) -> None:
    data_dir, source, target = ends
    (ada,) = customers(runtimes.open(data_dir), "ada")
    runtimes.close_all()
    started = tenure("migrate", "start", "--from", source, "--to", target, "--data-dir", data_dir)
    assert started.code == 0, str(started)
    assert keys_at(target) == [ada]

    runtime = runtimes.open(data_dir)  # dual-write: still on the source
    mirror = runtime.mirror()
    assert mirror is not None
    assert mirror.start()
    try:
        with runtime.ledger() as ledger:
            bob = Shop(ledger).customer("bob")
        erase(runtime, ada)
        deadline = time.monotonic() + 10
        while keys_at(target) != [bob]:
            assert time.monotonic() < deadline, (keys_at(target), mirror.error)
            time.sleep(0.05)
    finally:
        mirror.stop()
    runtimes.close_all()
    cut = tenure("migrate", "cutover", "--data-dir", data_dir)
    assert cut.code == 0, str(cut)
    runtime = runtimes.open(data_dir)
    assert runtime.settings.database() == target
    assert shown(runtime, bob) == ("Customer bob", False)
    assert shown(runtime, ada) == (None, True)


def test_a_start_replays_the_erasure_onto_a_key_restored_from_an_older_backup(
    data_dir: Path, runtimes: Runtimes
) -> None:
    runtime = runtimes.open(data_dir)
    (gone,) = customers(runtime, "gone")
    old = erase(runtime, gone)
    url = runtime.settings.database()
    runtimes.close_all()
    put_back(url, old)

    rebuilt = tenure("state", "rebuild", "--data-dir", data_dir)  # opens the storage
    assert rebuilt.code == 0, str(rebuilt)
    assert keys_at(url) == []
    runtime = runtimes.open(data_dir)
    assert shown(runtime, gone) == (None, True)


# ---------------------------------------------------------------- 0.2.0's key files


def as_key_file(data_dir: Path, url: str, customer: str) -> Path:
    """Move the customer's key from the database into a key file as 0.2.0 wrote it
    (the same wrapped bytes, base64, one line)."""
    with open_store(url) as store, store.write() as tx:
        stored = tx.data_keys.get(ACCOUNT, customer)
        assert stored is not None
        assert tx.data_keys.delete(ACCOUNT, customer)
    path = data_dir / "datakeys" / ACCOUNT / f"{customer}.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64encode(stored.wrapped) + b"\n")
    return path


def test_key_files_of_0_2_0_are_imported_on_open_and_deleted(
    data_dir: Path, runtimes: Runtimes
) -> None:
    runtime = runtimes.open(data_dir)
    ada, bob, gone = customers(runtime, "ada", "bob", "gone")
    old = erase(runtime, gone)
    url = runtime.settings.database()
    runtimes.close_all()
    files = [as_key_file(data_dir, url, customer) for customer in (ada, bob)]
    stale = data_dir / "datakeys" / ACCOUNT / f"{gone}.key"  # a key 0.2.0 failed to delete
    stale.write_bytes(base64.b64encode(old.wrapped) + b"\n")
    assert keys_at(url) == []

    runtime = runtimes.open(data_dir)
    assert keys_at(url) == sorted([ada, bob])
    assert not any(path.exists() for path in [*files, stale])
    assert not (data_dir / "datakeys" / ACCOUNT).exists()
    assert shown(runtime, ada) == ("Customer ada", False)
    assert shown(runtime, bob) == ("Customer bob", False)
    assert shown(runtime, gone) == (None, True)


def stored_customers(runtimes: Runtimes, data_dir: Path, *names: str) -> tuple[str, list[str]]:
    """``customers`` on a runtime closed again: the database URL and the ids."""
    runtime = runtimes.open(data_dir)
    made = customers(runtime, *names)
    runtimes.close_all()
    return runtime.settings.database(), made


def test_a_key_file_of_another_customer_stops_the_import_and_nothing_changes(
    data_dir: Path, runtimes: Runtimes
) -> None:
    url, (ada, bob) = stored_customers(runtimes, data_dir, "ada", "bob")
    ada_file = as_key_file(data_dir, url, ada)
    bob_file = as_key_file(data_dir, url, bob)
    bob_file.write_bytes(ada_file.read_bytes())  # a file moved from another customer

    with pytest.raises(ConfigurationError, match=f"{bob}.key does not unwrap"):
        runtimes.open(data_dir)
    assert keys_at(url) == []
    assert ada_file.exists()
    assert bob_file.exists()


def test_a_key_row_moved_to_another_customer_or_altered_opens_nothing(
    data_dir: Path, runtimes: Runtimes
) -> None:
    runtime = runtimes.open(data_dir)
    ada, bob = customers(runtime, "ada", "bob")
    with runtime.store.write() as tx:  # someone who can write to the database
        ada_key = tx.data_keys.get(ACCOUNT, ada)
        assert ada_key is not None
        assert tx.data_keys.delete(ACCOUNT, bob)
        assert tx.data_keys.add(ACCOUNT, StoredDataKey(bob, ada_key.wrapped, ada_key.created_at))
    with pytest.raises(ConfigurationError, match=f"{bob} in the database does not unwrap"):
        shown(runtime, bob)
    with closing(raw_sqlite(data_dir)) as db, db:  # SQLite keeps text in a BLOB column
        db.execute("UPDATE data_keys SET wrapped = 'tdk1' WHERE customer = ?", (ada,))
    with pytest.raises(ConfigurationError, match=f"{ada} in the database is not a wrapped"):
        shown(runtime, ada)


def test_a_key_file_already_imported_is_deleted_and_one_with_another_key_stops_the_start(
    data_dir: Path, runtimes: Runtimes
) -> None:
    url, (ada, bob) = stored_customers(runtimes, data_dir, "ada", "bob")
    with open_store(url) as store, store.read() as tx:
        held = {c: tx.data_keys.get(ACCOUNT, c) for c in (ada, bob)}
    files = {c: as_key_file(data_dir, url, c) for c in (ada, bob)}
    ada_key = held[ada]
    assert ada_key is not None
    put_back(url, ada_key)  # a crash after the import's commit, before the deletion
    wrap = DataKeyWrap(load_master_key(data_dir))
    _, other = wrap.new_key(ACCOUNT, bob)
    put_back(url, StoredDataKey(bob, other, ada_key.created_at))  # not the file's key

    with pytest.raises(ConfigurationError, match=f"{bob}.key holds another key"):
        runtimes.open(data_dir)
    assert files[ada].exists()
    files[bob].unlink()  # what the operator does once the database's key is the right one
    runtime = runtimes.open(data_dir)
    assert not files[ada].exists()
    assert keys_at(url) == sorted([ada, bob])
    assert shown(runtime, ada) == ("Customer ada", False)


def test_the_writer_deletes_the_key_in_the_transaction_of_the_erasure(
    data_dir: Path, runtimes: Runtimes
) -> None:
    runtime = runtimes.open(data_dir)
    ada, bob = customers(runtime, "ada", "bob")
    with runtime.ledger() as ledger:  # the writer alone: no handler deletes anything after
        ledger.execute(Submission(ACCOUNT, EraseCustomer(ada), ACTOR, reason="asked"))
    assert keys_at(runtime.settings.database()) == [bob]
