"""A proof-carrying check never quotes a stored checkpoint whose ``tenure-state``
line is not the state the service proved: the note in the database is hostile
(docs/state.md, "Every path that trusts the state proves it first")."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

from support.server import running_server, seed_data_dir
from tenure.ledger.checkpoint import parse_checkpoint
from tenure.ledger.note import parse_note
from tenure.ledger.statemap import root_from_path, row_leaf


def test_a_forged_row_leaf_and_state_line_are_never_quoted(tmp_path: Path) -> None:
    """The attacker edits a license row, its state-map leaf, and the stored note's
    state line to the root the edited leaf implies along the honest path (the note's
    signature no longer verifies, which the service does not check on each proof):
    the answer must not carry the edited row."""
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    seed_data_dir(data_dir, events=60, seed=37)
    logs.mkdir()
    with running_server(data_dir, logs) as server, server.client(server.owner_key()) as owner:
        serial = owner.get("/v1/licenses", params={"limit": 1}).json()["licenses"][0]["serial"]
        body = {"license": serial, "entitlement": "seats", "proof": True}
        honest = owner.post("/v1/check", json=body)
        assert honest.status_code == 200, honest.text
        note = honest.json()["proof"]["checkpoint"]
        [row_proof] = [r for r in honest.json()["proof"]["rows"] if r["table"] == "licenses"]
        signed = parse_checkpoint(parse_note(note)[0])
        assert signed.state is not None
        edited = {
            **row_proof["row"],
            "status": "suspended" if row_proof["row"]["status"] != "suspended" else "active",
        }
        k, leaf = row_leaf("licenses", [serial], edited)
        siblings = [base64.b64decode(s) for s in row_proof["siblings"]]
        forged_root = root_from_path(k, leaf, siblings)
        forged = note.replace(
            base64.b64encode(signed.state).decode(), base64.b64encode(forged_root).decode()
        )
        assert forged != note
        db = sqlite3.connect(data_dir / "tenure.db", isolation_level=None, timeout=30)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "UPDATE proj_licenses SET status = ? WHERE serial = ?", (edited["status"], serial)
            )
            db.execute("UPDATE state_leaves SET leaf = ? WHERE k = ?", (leaf, k))
            db.execute("UPDATE ledger_checkpoints SET note = ? WHERE note = ?", (forged, note))
            db.execute("COMMIT")
        finally:
            db.close()

        answer = owner.post("/v1/check", json=body)

        if answer.status_code == 200:
            rows = answer.json()["proof"]["rows"]
            assert [r["row"] for r in rows if r["table"] == "licenses"] == [row_proof["row"]]
            assert parse_checkpoint(parse_note(answer.json()["proof"]["checkpoint"])[0]).state == (
                signed.state
            )
        else:
            assert answer.status_code == 503, answer.text
            assert answer.json()["type"].endswith("/state_unverified")
