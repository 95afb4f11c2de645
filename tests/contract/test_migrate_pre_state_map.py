"""``tenure migrate`` of a store whose newest checkpoint, at its head, was signed
before the state map (0.2.0 and earlier: no ``tenure-state`` line), and which holds
no state map (never opened by a writer since the upgrade): such a checkpoint makes
no claim about the state, so the migration proves the target's map against the
source's rows alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from support.cli import tenure, tenure_json
from support.postgres import pg_url
from support.server import seed_data_dir
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.ledger.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from tenure.ledger.note import parse_note


def _as_before_the_state_map(data_dir: Path) -> int:
    """Sign the head's checkpoint again without a state line, clear the state map
    (leaves, buckets and root: the upgrade to 0012 made empty tables) and drop the
    sidecar (which holds the note with the line); return the head size."""
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        origin, signer = runtime.ledger_signer("default")
    finally:
        runtime.close()
    db = sqlite3.connect(data_dir / "tenure.db", isolation_level=None)
    try:
        size, note = db.execute(
            "SELECT size, note FROM ledger_checkpoints WHERE account = 'default' "
            "ORDER BY size DESC LIMIT 1"
        ).fetchone()
        (head,) = db.execute("SELECT size FROM ledger_heads WHERE account = 'default'").fetchone()
        signed = parse_checkpoint(parse_note(note)[0])
        assert signed.state is not None
        assert size == head
        bare = sign_checkpoint(Checkpoint(origin, size, signed.root), [signer])
        db.execute("UPDATE ledger_checkpoints SET note = ? WHERE size = ?", (bare, size))
        db.execute("UPDATE ledger_heads SET state_root = NULL")
        db.execute("DELETE FROM state_leaves")  # no writer has opened it since 0.2.0
        db.execute("DELETE FROM state_buckets")
    finally:
        db.close()
    for sidecar in (data_dir / "tenure.db.checkpoints").glob("*"):
        sidecar.unlink()
    return int(head)


def test_a_head_signed_without_a_state_line_migrates_and_proves(
    tmp_path: Path, pg_database: str
) -> None:
    data_dir = tmp_path / "data"
    seed_data_dir(data_dir, events=80, seed=31)
    size = _as_before_the_state_map(data_dir)
    source = f"sqlite:///{data_dir / 'tenure.db'}"
    target = pg_url(pg_database)

    done = tenure("migrate", "--from", source, "--to", target, "--output", "json")

    assert done.code == 0, str(done)
    [proof] = done.json()["accounts"]
    assert proof["rows"]["ledger_events"] == size
    root = tenure_json("state", "root", "--db", target, "--data-dir", data_dir)
    assert root["checkpoint"] == {"size": size, "state": None}
    assert root["consistent"] is True
    assert root["stored"] == root["root"] == proof["state_root"]
