"""A store behind (or forked from) the checkpoint in its sidecar refuses to append and
to sign: either would make the log sign two inconsistent checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.shop import ACCOUNT, Probe, Runtimes, Shop
from support.sqlite import backup_sqlite, db_path, replace_database
from tenure.app.runtime import Runtime
from tenure.domain.commands import CreateCustomer
from tenure.errors import LedgerTampered, StoreBehindCheckpoint
from tenure.service.ledger import SignRequest
from tenure.service.verify import verify_ledger

K = 12
MORE = 5


def _append(runtime: Runtime, prefix: str, count: int) -> None:
    with runtime.ledger() as ledger:
        shop = Shop(ledger)
        for n in range(count):
            shop.run(CreateCustomer(None, None, f"{prefix}-{n}"))
        ledger.execute(SignRequest(ACCOUNT))


def _sidecar_note(runtime: Runtime) -> str:
    assert runtime.sidecar is not None
    note = runtime.sidecar.read_note(ACCOUNT)
    assert note is not None
    return note


def _assert_refuses(runtime: Runtime, match: str) -> None:
    probe = Probe(runtime.store.engine)
    before = probe.snapshot()
    note = _sidecar_note(runtime)
    with runtime.ledger() as ledger:
        with pytest.raises(StoreBehindCheckpoint, match=match):
            Shop(ledger).run(CreateCustomer(None, None, "one-more"))
        with pytest.raises(StoreBehindCheckpoint, match=match):
            ledger.execute(SignRequest(ACCOUNT))
    assert probe.snapshot() == before, "nothing appended, nothing signed (also not on close)"
    assert _sidecar_note(runtime) == note, "the sidecar is left as it was"


def test_store_restored_from_an_older_copy_refuses_to_append_and_to_sign(
    runtimes: Runtimes, data_dir: Path, tmp_path: Path
) -> None:
    runtime = runtimes.open(data_dir)
    _append(runtime, "a", K)
    old_copy = tmp_path / "at-k.db"
    backup_sqlite(db_path(data_dir), old_copy)
    _append(runtime, "b", MORE)
    assert runtime.sidecar is not None
    signed = runtime.sidecar.read(ACCOUNT)
    assert signed is not None
    assert signed.size == K + MORE
    runtime.close()

    replace_database(data_dir, old_copy)

    restored = runtimes.open(data_dir)
    assert Probe(restored.store.engine).size() == K
    _assert_refuses(restored, f"holds {K} events .* checkpoint {K + MORE} was signed")
    with pytest.raises(LedgerTampered) as caught:
        verify_ledger(restored.store, ACCOUNT, restored.sidecar)
    assert caught.value.seq == K


def test_store_whose_tree_disagrees_with_the_sidecar_refuses(
    runtimes: Runtimes, data_dir: Path, tmp_path: Path
) -> None:
    # The original store signs K + MORE events ...
    runtime = runtimes.open(data_dir)
    _append(runtime, "a", K)
    fork_point = tmp_path / "at-k.db"
    backup_sqlite(db_path(data_dir), fork_point)
    _append(runtime, "original", MORE)
    published = _sidecar_note(runtime)
    runtime.close()

    # ... an old copy, its sidecar lost, grows MORE different events to the same size ...
    replace_database(data_dir, fork_point)
    assert runtime.sidecar is not None
    runtime.sidecar.path(ACCOUNT).unlink()
    forked = runtimes.open(data_dir)
    _append(forked, "fork", MORE)
    assert Probe(forked.store.engine).size() == K + MORE
    assert _sidecar_note(forked) != published
    forked.close()

    # ... and then the sidecar of what was published comes back.
    assert forked.sidecar is not None
    forked.sidecar.write(ACCOUNT, published)

    reopened = runtimes.open(data_dir)
    _assert_refuses(reopened, "disagrees with the signed checkpoint")
    with pytest.raises(LedgerTampered):
        verify_ledger(reopened.store, ACCOUNT, reopened.sidecar)


def test_store_that_grew_past_a_disagreeing_sidecar_refuses(
    runtimes: Runtimes, data_dir: Path, tmp_path: Path
) -> None:
    runtime = runtimes.open(data_dir)
    _append(runtime, "a", K)
    fork_point = tmp_path / "at-k.db"
    backup_sqlite(db_path(data_dir), fork_point)
    _append(runtime, "original", MORE)
    published = _sidecar_note(runtime)
    runtime.close()

    replace_database(data_dir, fork_point)
    assert runtime.sidecar is not None
    runtime.sidecar.path(ACCOUNT).unlink()
    forked = runtimes.open(data_dir)
    _append(forked, "fork", MORE + 3)
    forked.close()
    assert forked.sidecar is not None
    forked.sidecar.write(ACCOUNT, published)

    reopened = runtimes.open(data_dir)
    assert Probe(reopened.store.engine).size() == K + MORE + 3
    _assert_refuses(reopened, "disagrees with the signed checkpoint")
