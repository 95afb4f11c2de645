"""Authenticated state (issue 17, docs/state.md), played as an attacker with disk
access: a projection row or a ledger leaf edited with sqlite3 is caught by
``ledger verify`` (naming it), by the service at start and by its periodic pass (it
then refuses checks and appends and says why in /readyz), and a rebuild repairs it.
The state root recomputed from ``tenure state export`` by an implementation written
here from docs/state.md alone equals the one the checkpoint signs."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from pathlib import Path

import httpx
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from support.cli import tenure
from support.server import running_server, seed_data_dir
from support.sqlite import cut_history
from tenure.ledger.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from tenure.ledger.note import NoteSigner, parse_note
from tenure.ledger.statemap import MapTop, bucket_hash, bucket_of, row_leaf


def _db(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "tenure.db", isolation_level=None, timeout=30)


def _seeded(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    seed_data_dir(data_dir, events=300, seed=17)
    (tmp_path / "logs").mkdir()
    return data_dir


def _revoked_serial(data_dir: Path) -> str:
    with _db(data_dir) as db:
        row = db.execute("SELECT serial FROM proj_licenses WHERE status = 'revoked'").fetchone()
    assert row is not None, "the demo workload revokes licenses"
    return str(row[0])


def _verify(data_dir: Path) -> tuple[int, dict[str, object]]:
    done = tenure("ledger", "verify", "--data-dir", data_dir, "--output", "json")
    return done.code, json.loads(done.stdout)


def _readiness(url: str) -> dict[str, object]:
    checks = httpx.get(f"{url}/readyz").json()["checks"]
    return {check["name"]: check for check in checks}


def test_an_edited_row_is_named_refused_and_repaired(tmp_path: Path) -> None:
    data_dir = _seeded(tmp_path)
    assert _verify(data_dir)[0] == 0
    serial = _revoked_serial(data_dir)
    with _db(data_dir) as db:
        db.execute("UPDATE proj_licenses SET status = 'active' WHERE serial = ?", (serial,))

    code, report = _verify(data_dir)
    assert code == 1
    assert (report["table"], report["key"]) == ("licenses", [serial])
    assert tenure("state", "root", "--data-dir", data_dir).code == 1

    settings = {"TENURE_STATE_VERIFY_MINUTES": "0.01"}
    with running_server(data_dir, tmp_path / "logs", **settings) as server:
        state = _readiness(server.url)["state"]
        assert state["ok"] is False
        assert "default" in state["detail"]
        assert serial in state["detail"]
        with server.client(server.owner_key()) as owner:
            answer = owner.post("/v1/check", json={"license": serial, "entitlement": "seats"})
            assert answer.status_code == 503, answer.text
            assert answer.json()["type"].endswith("/state_unverified")
            batch = owner.post(
                "/v1/check/batch", json={"checks": [{"license": serial, "entitlement": "seats"}]}
            )
            assert batch.status_code == 503, batch.text
            appended = owner.post(
                "/v1/customers", json={"name": "Mallory", "email": "m@example.com"}
            )
            assert appended.status_code == 503, appended.text

            # The operator repairs the projection by replay; the next pass proves it.
            repaired = tenure(
                "state", "rebuild", "--data-dir", data_dir, "--accept-change", "--output", "json"
            )
            assert repaired.code == 0, repaired.stderr
            deadline = time.monotonic() + 15
            while not _readiness(server.url)["state"]["ok"]:
                assert time.monotonic() < deadline, _readiness(server.url)["state"]
                time.sleep(0.2)
            answer = owner.post("/v1/check", json={"license": serial, "entitlement": "seats"})
            assert answer.status_code == 200, answer.text
            assert (answer.json()["allowed"], answer.json()["reason"]) == (False, "revoked")
    assert _verify(data_dir)[0] == 0


def test_an_edited_leaf_stops_appends_and_signing(tmp_path: Path) -> None:
    data_dir = _seeded(tmp_path)
    with _db(data_dir) as db:
        (leaf,) = db.execute("SELECT leaf FROM ledger_events WHERE seq = 5").fetchone()
        edited = bytes(leaf).replace(b'"time":"', b'"time":"1', 1)
        assert edited != bytes(leaf)
        db.execute("UPDATE ledger_events SET leaf = ? WHERE seq = 5", (edited,))
        checkpoints = db.execute("SELECT count(*) FROM ledger_checkpoints").fetchone()[0]
    code, report = _verify(data_dir)
    assert (code, report["seq"]) == (1, 5)

    with running_server(data_dir, tmp_path / "logs") as server:
        state = _readiness(server.url)["state"]
        assert state["ok"] is False
        assert "event 5" in state["detail"]
        with server.client(server.owner_key()) as owner:
            appended = owner.post("/v1/customers", json={"name": "Eve", "email": "e@example.com"})
            assert appended.status_code == 503, appended.text
            signed = owner.post("/v1/ledger/checkpoint")
            assert signed.status_code == 503, signed.text
    with _db(data_dir) as db:
        assert db.execute("SELECT count(*) FROM ledger_checkpoints").fetchone()[0] == checkpoints


def _root_from_rows(lines: list[str]) -> bytes:
    """docs/state.md, "The map", implemented from the text alone."""
    leaves = {}
    for line in lines:
        item = json.loads(line)
        k = hashlib.sha256(rfc8785.dumps([item["table"], item["key"]])).digest()
        value = hashlib.sha256(rfc8785.dumps(item["row"])).digest()
        leaves[int.from_bytes(k, "big")] = hashlib.sha256(b"\x00" + k + value).digest()

    def subtree(keys: list[int], depth: int) -> bytes:
        if not keys:
            return bytes(32)
        if len(keys) == 1:
            return leaves[keys[0]]
        left = [k for k in keys if not (k >> (255 - depth)) & 1]
        right = [k for k in keys if (k >> (255 - depth)) & 1]
        return hashlib.sha256(
            b"\x01" + subtree(left, depth + 1) + subtree(right, depth + 1)
        ).digest()

    return subtree(sorted(leaves), 0)


def test_the_signed_state_root_is_recomputed_from_the_export(tmp_path: Path) -> None:
    data_dir = _seeded(tmp_path)
    exported = tenure("state", "export", "--data-dir", data_dir)
    assert exported.code == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert len(lines) > 50
    note = tenure("ledger", "checkpoint", "--data-dir", data_dir).stdout
    body = note.split("\n\n")[0].split("\n")
    assert body[3].startswith("tenure-state ")
    assert base64.b64decode(body[3].split(" ")[1]) == _root_from_rows(lines)


def test_a_row_edited_while_serving_is_never_answered_allowed(tmp_path: Path) -> None:
    data_dir = _seeded(tmp_path)
    serial = _revoked_serial(data_dir)
    question = {"license": serial, "entitlement": "seats"}
    with running_server(data_dir, tmp_path / "logs") as server:
        assert _readiness(server.url)["state"]["ok"] is True
        with server.client(server.owner_key()) as owner:
            before = owner.post("/v1/check", json=question)
            assert (before.status_code, before.json()["reason"]) == (200, "revoked")
            with _db(data_dir) as db:
                db.execute("UPDATE proj_licenses SET status = 'active' WHERE serial = ?", (serial,))
            after = owner.post("/v1/check", json=question)
            assert after.status_code == 503, after.text
            assert after.json()["type"].endswith("/state_unverified")
            assert _readiness(server.url)["state"]["ok"] is False


def test_a_consistently_forged_map_is_refused_too(tmp_path: Path) -> None:
    """The attacker rewrites the row, its leaf, its bucket and the head's root, all
    consistent with each other: the service proves against the map it proved at start
    and has kept since, not against the database's."""
    data_dir = _seeded(tmp_path)
    serial = _revoked_serial(data_dir)
    question = {"license": serial, "entitlement": "seats"}
    with (
        running_server(data_dir, tmp_path / "logs") as server,
        server.client(server.owner_key()) as owner,
    ):
        assert owner.post("/v1/check", json=question).json()["reason"] == "revoked"
        _forge_consistently(data_dir, serial)
        # The rows, leaves, buckets and head root agree; only the signature does not.
        forged = tenure("state", "root", "--data-dir", data_dir, "--output", "json").json()
        assert forged["stored"] == forged["root"] != forged["checkpoint"]["state"]
        after = owner.post("/v1/check", json=question)
        assert after.status_code == 503, after.text


def _forge_consistently(data_dir: Path, serial: str) -> None:
    exported = tenure("state", "export", "--data-dir", data_dir).stdout.splitlines()
    (item,) = [
        json.loads(line)
        for line in exported
        if json.loads(line)["table"] == "licenses" and json.loads(line)["key"] == [serial]
    ]
    row = {**item["row"], "status": "active"}
    k, leaf = row_leaf("licenses", [serial], row)
    bucket = bucket_of(k)
    with _db(data_dir) as db:
        db.execute("UPDATE proj_licenses SET status = 'active' WHERE serial = ?", (serial,))
        db.execute("UPDATE state_leaves SET leaf = ? WHERE k = ?", (leaf, k))
        leaves = db.execute("SELECT k, leaf FROM state_leaves WHERE bucket = ?", (bucket,))
        count, digest = bucket_hash([(bytes(a), bytes(b)) for a, b in leaves.fetchall()])
        db.execute(
            "UPDATE state_buckets SET hash = ?, count = ? WHERE bucket = ?", (digest, count, bucket)
        )
        buckets = db.execute("SELECT bucket, count, hash FROM state_buckets").fetchall()
        root = MapTop({b: (c, bytes(h)) for b, c, h in buckets}).root()
        db.execute("UPDATE ledger_heads SET state_root = ?", (root,))


def test_a_cut_history_is_caught_by_a_checkpoint_kept_outside(tmp_path: Path) -> None:
    """Delete the newest events, their nodes and checkpoints, the sidecar, and rebuild
    the projection: the store verifies on its own; a checkpoint kept elsewhere does not."""
    data_dir = _seeded(tmp_path)
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(tenure("ledger", "checkpoint", "--data-dir", data_dir).stdout)
    cut = cut_history(data_dir, 7)
    rebuilt = tenure("state", "rebuild", "--data-dir", data_dir, "--accept-change")
    assert rebuilt.code == 0, rebuilt.stderr
    assert _verify(data_dir)[0] == 0  # what nothing can catch without an outside copy
    done = tenure(
        "ledger", "verify", "--data-dir", data_dir, "--since-checkpoint", kept, "--output", "json"
    )
    assert done.code == 1
    assert done.json()["seq"] == cut
    assert "cut" in done.json()["error"]


def test_no_snapshot_of_an_edited_row_and_a_restore_from_before_the_edit(tmp_path: Path) -> None:
    data_dir = _seeded(tmp_path)
    site = (tmp_path / "site").as_uri()
    assert tenure("ship", "--data-dir", data_dir, "--site", site).code == 0
    before = tenure("snapshot", "create", "--data-dir", data_dir, "--site", site)
    assert before.code == 0, before.stderr
    serial = _revoked_serial(data_dir)
    with _db(data_dir) as db:
        db.execute("UPDATE proj_licenses SET status = 'active' WHERE serial = ?", (serial,))

    refused = tenure("snapshot", "create", "--data-dir", data_dir, "--site", site)
    assert refused.code != 0
    assert serial in refused.stderr + refused.stdout

    restored = tmp_path / "restored.db"
    done = tenure(
        "restore", "--site", site, "--into", f"sqlite:///{restored}", "--data-dir", data_dir
    )
    assert done.code == 0, done.stderr
    with sqlite3.connect(restored) as db:
        status = db.execute("SELECT status FROM proj_licenses WHERE serial = ?", (serial,))
        assert status.fetchone() == ("revoked",)
    verified = tenure("ledger", "verify", "--data-dir", data_dir, "--db", f"sqlite:///{restored}")
    assert verified.code == 0, verified.stdout


def test_a_cut_history_is_caught_by_a_site_at_start(tmp_path: Path) -> None:
    data_dir = _seeded(tmp_path)
    site = (tmp_path / "site").as_uri()
    assert tenure("ship", "--data-dir", data_dir, "--site", site).code == 0
    cut = cut_history(data_dir, 5)
    assert tenure("state", "rebuild", "--data-dir", data_dir, "--accept-change").code == 0
    with running_server(data_dir, tmp_path / "logs", TENURE_SITES=site) as server:
        state = _readiness(server.url)["state"]
        assert state["ok"] is False
        assert f"only {cut}" in state["detail"] or f"holds {cut}" in state["detail"]
        with server.client(server.owner_key()) as owner:
            answer = owner.post("/v1/check", json={"license": "TNR-X", "entitlement": "seats"})
            assert answer.status_code == 503, answer.text


def test_a_key_written_into_the_database_signs_nothing_the_service_trusts(
    tmp_path: Path,
) -> None:
    """The attacker forges the map consistently, signs a checkpoint of it with a key of
    their own under the ledger's name, and writes that key into the database: the
    command line run on the database alone is fooled (it trusts the stored keys, as
    docs/state.md says), the service — which trusts only its key store — is not."""
    data_dir = _seeded(tmp_path)
    serial = _revoked_serial(data_dir)
    _forge_consistently(data_dir, serial)
    with _db(data_dir) as db:
        size, note = db.execute(
            "SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        (forged_root,) = db.execute("SELECT state_root FROM ledger_heads").fetchone()
        signed = parse_checkpoint(parse_note(note)[0])
        mallory = NoteSigner(signed.origin, Ed25519PrivateKey.generate())
        forged = sign_checkpoint(
            Checkpoint(signed.origin, size, signed.root, bytes(forged_root)), [mallory]
        )
        db.execute("UPDATE ledger_checkpoints SET note = ? WHERE size = ?", (forged, size))
        db.execute(
            "INSERT INTO ledger_keys (account, key_id, verifier, created_at) VALUES (?, ?, ?, ?)",
            ("default", mallory.verifier.key_id.hex(), mallory.verifier.key_string(), "x"),
        )
    for sidecar in (data_dir / "tenure.db.checkpoints").glob("*"):
        sidecar.unlink()
    with running_server(data_dir, tmp_path / "logs") as server:
        assert _readiness(server.url)["state"]["ok"] is False
        with server.client(server.owner_key()) as owner:
            answer = owner.post("/v1/check", json={"license": serial, "entitlement": "seats"})
            assert answer.status_code == 503, answer.text
