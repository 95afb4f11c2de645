"""Personal data (issue 7): sealed at rest, never leaked, erasable (crypto-shredding).

Known plaintext names and e-mail addresses go through the real writer and a real
``tenure serve``; afterwards no byte of the data dir (SQLite files with WAL, key
files), the site (segments, snapshots), the ledger export or the server's logs holds
them in any common encoding. Only the API's answers to authorized readers do.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from support.cli import tenure
from support.leaves import import_leaves, read_leaves
from support.server import running_server
from support.shop import ACCOUNT, ACTOR, Runtimes
from support.sqlite import backup_sqlite, db_path
from tenure.app.runtime import Runtime
from tenure.crypto.datakeys import open_field, seal_field
from tenure.domain.commands import (
    CreateCustomer,
    DefineProduct,
    EraseCustomer,
    IssueLicense,
    PublishPlan,
)
from tenure.errors import Conflict, InvalidInput
from tenure.service import checks, licensing
from tenure.service.ledger import Submission
from tenure.service.replay import digest_of, rebuild
from tenure.service.verify import verify_ledger
from tenure.store import projection_rows
from tenure.store.data_keys import StoredDataKey
from tenure.store.engine import read_transaction

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden-0.1.0"

NAME, EMAIL = "Zephyrine Quillfeather", "zq.leak-4711@quillfeather.example"
HTTP_NAME, HTTP_EMAIL = "Bartholomew Xylandrion", "bx.leak-0815@xylandrion.example"
SECRETS = (NAME, EMAIL, HTTP_NAME, HTTP_EMAIL)
PRODUCT, PLAN = "studio", "studio-pro"


def encodings(text: str) -> list[bytes]:
    """Forms in which ``text`` could sit in a file: as is (compared case-folded),
    JSON- and Unicode-escaped, and the stable middle of its base64 at each of the
    three alignments (standard and URL-safe alphabets)."""
    raw = text.encode()
    forms = [raw, json.dumps(text).encode()[1:-1], text.encode("unicode_escape")]
    forms += [text.replace("@", "\\u0040").encode(), *(part.encode() for part in text.split())]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        middle = encoded[(pad * 4 + 2) // 3 + 1 : -4]
        forms += [middle, middle.replace(b"+", b"-").replace(b"/", b"_")]
    return forms


def leaks(blobs: dict[str, bytes]) -> list[tuple[str, str]]:
    """(where, secret) for every blob that holds a secret in any of its encodings."""
    found = []
    for where, blob in blobs.items():
        folded = blob.lower()
        for secret in SECRETS:
            for i, form in enumerate(encodings(secret)):
                hit = form in blob if i >= 5 + len(secret.split()) else form.lower() in folded
                if hit:
                    found.append((where, secret))
                    break
    return found


def files_under(*roots: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for root in roots for p in root.rglob("*") if p.is_file()}


def submission(command: object, reason: str | None = None, key: str | None = None) -> Submission:
    return Submission(ACCOUNT, command, ACTOR, reason=reason, idempotency_key=key)  # type: ignore[arg-type]


def catalog_and_customer(runtime: Runtime, external_id: str = "crm-leak-1") -> tuple[str, str]:
    """Catalog, the NAME/EMAIL customer and a license of it: (customer, serial)."""
    with runtime.ledger() as ledger:
        ledger.execute(submission(DefineProduct(PRODUCT, "Studio", ["export-pdf"])))
        ledger.execute(submission(PublishPlan(PLAN, PRODUCT, {"feature:export-pdf": True})))
        created = ledger.execute(submission(CreateCustomer(NAME, EMAIL, external_id), key="c1"))
        customer = created.result["customer"]
        again = ledger.execute(submission(CreateCustomer(NAME, EMAIL, external_id)))
        assert again.result == {"customer": customer, "created": False}  # opened to compare
        with pytest.raises(Conflict) as conflict:
            ledger.execute(submission(CreateCustomer("Other " + NAME, EMAIL, external_id)))
        assert NAME not in conflict.value.message
        issued = ledger.execute(submission(IssueLicense(PRODUCT, PLAN, customer, "order-1")))
    return customer, issued.result["serial"]


def test_a_field_sealed_in_one_event_and_field_opens_nowhere_else() -> None:
    key, event = bytes(range(32)), "evt_" + "ab" * 16
    sealed = seal_field(key, event, "name", NAME)
    assert open_field(key, event, "name", sealed) == NAME
    for other_event, field in ((event, "email"), ("evt_" + "cd" * 16, "name")):
        with pytest.raises(InvalidInput):
            open_field(key, other_event, field, sealed)
    with pytest.raises(InvalidInput):
        open_field(bytes(32), event, "name", sealed)


def test_personal_data_reaches_no_store_log_backup_or_export(
    tmp_path: Path, data_dir: Path, runtimes: Runtimes
) -> None:
    site = f"file://{tmp_path / 'site'}"
    runtime = runtimes.open(data_dir)
    customer, serial = catalog_and_customer(runtime)
    runtimes.close_all()

    with running_server(data_dir, tmp_path) as server:
        with server.client(server.owner_key()) as api:
            shown = api.get(f"/v1/customers/{customer}").json()
            assert (shown["name"], shown["email"], shown["erased"]) == (NAME, EMAIL, False)
            body = {"name": HTTP_NAME, "email": HTTP_EMAIL, "external_id": "crm-leak-2"}
            created = api.post("/v1/customers", json=body)
            assert created.status_code == 201, created.text
            assert created.json()["name"] == HTTP_NAME  # authorized reader: plaintext
            other = api.post("/v1/customers", json={**body, "name": "Not " + HTTP_NAME})
            assert other.status_code == 409
            bad = api.post("/v1/customers", json={"name": HTTP_NAME, "email": 5})
            assert bad.status_code == 400
            issued = api.post(
                "/v1/licenses",
                json={
                    "product": PRODUCT,
                    "plan": PLAN,
                    "customer": created.json()["id"],
                    "order_ref": "http-1",
                },
            )
            assert issued.status_code == 201, issued.text
            assert api.get(f"/v1/licenses/{serial}").status_code == 200
            responses = [api.get("/v1/audit").content, api.get("/v1/ledger/events").content]
        with server.client() as anonymous:
            refused = anonymous.get(f"/v1/customers/{customer}")
            assert refused.status_code == 401
            responses.append(refused.content)
        logs = {"stdout": server.stdout().encode(), "stderr": server.stderr().encode()}

    for args in (("ship",), ("snapshot", "create")):
        done = tenure(*args, "--data-dir", data_dir, "--site", site, "--output", "json")
        assert done.code == 0, str(done)
    exported = tenure("ledger", "export", "--data-dir", data_dir)
    assert exported.code == 0, str(exported)
    assert exported.stdout.count("customer.created") == 2

    blobs = {**files_under(data_dir, tmp_path / "site"), **logs, "export": exported.stdout.encode()}
    blobs.update({f"response {i}": r for i, r in enumerate(responses)})
    assert any(p.endswith("tenure.db-wal") or p.endswith("tenure.db") for p in blobs)
    assert leaks(blobs) == []
    assert leaks({"self-check": f"x{EMAIL.upper()}y".encode()}) != []  # the search works


def stored_key(runtime: Runtime, customer: str) -> StoredDataKey | None:
    """The customer's wrapped data key as the database holds it."""
    with runtime.store.read() as tx:
        return tx.data_keys.get(ACCOUNT, customer)


def test_erasure_shreds_the_key_keeps_licenses_and_survives_a_restore(
    tmp_path: Path, data_dir: Path, runtimes: Runtimes
) -> None:
    site = f"file://{tmp_path / 'site'}"
    runtime = runtimes.open(data_dir)
    customer, serial = catalog_and_customer(runtime)
    assert stored_key(runtime, customer) is not None
    assert not (data_dir / "datakeys").exists()  # keys live in the database only
    before = digest_of(runtime.store, ACCOUNT)
    runtimes.close_all()
    for args in (("ship",), ("snapshot", "create")):  # a snapshot taken before the erasure
        assert tenure(*args, "--data-dir", data_dir, "--site", site).code == 0
    old_database = tmp_path / "backup-before-erasure.db"  # it holds the wrapped key
    backup_sqlite(db_path(data_dir), old_database)
    with closing(sqlite3.connect(old_database)) as old:
        query = "SELECT count(*) FROM data_keys WHERE customer = ?"
        assert old.execute(query, (customer,)).fetchone() == (1,)

    erased = tenure("customer", "erase", customer, "--reason", "GDPR art. 17 request",
                    "--data-dir", data_dir, "--output", "json")  # fmt: skip
    assert erased.code == 0, str(erased)
    assert erased.json() == {"customer": customer, "erased": True, "already": False,
                             "key_destroyed": True}  # fmt: skip
    again = tenure("customer", "erase", customer, "--reason", "twice", "--data-dir", data_dir)
    assert again.code == 0, str(again)
    assert "already erased" in again.stdout

    runtime = runtimes.open(data_dir)
    assert runtime.personal is not None
    assert stored_key(runtime, customer) is None
    shown = runtime.personal.read_customer(runtime.store, ACCOUNT, customer)
    assert (shown["name"], shown["email"], shown["erased"]) == (None, None, True)
    after = digest_of(runtime.store, ACCOUNT)
    assert (after.size, after.digest != before.digest) == (before.size + 1, True)
    verify_ledger(runtime.store, ACCOUNT)
    rebuild(runtime.store, ACCOUNT)  # the projection replays to the same digest
    assert digest_of(runtime.store, ACCOUNT).digest == after.digest
    now = datetime.now(UTC)
    answer = checks.check(
        runtime.store, ACCOUNT, checks.CheckItem(serial, "feature:export-pdf"), now
    ).answer
    assert answer["allowed"] is True, answer
    assert licensing.get_license(runtime.store, ACCOUNT, serial)["customer"] == customer
    with runtime.ledger() as ledger, pytest.raises(Conflict):  # erased stays erased
        ledger.execute(submission(CreateCustomer(NAME, EMAIL, "crm-leak-1")))
    runtimes.close_all()
    assert tenure("ship", "--data-dir", data_dir, "--site", site).code == 0

    # The database comes back from the backup taken before the erasure (with the
    # wrapped key in it), and its ledger is brought forward from the site, whose
    # segments after the snapshot carry customer.erased.
    target = tmp_path / "restored"
    target.mkdir()
    backup_sqlite(old_database, target / "tenure.db")
    into = f"sqlite:///{target / 'tenure.db'}"
    restored = tenure("restore", "--site", site, "--into", into, "--replace",
                      "--data-dir", data_dir, "--output", "json")  # fmt: skip
    assert restored.code == 0, str(restored)
    runtime = runtimes.open(data_dir, database_url=into)
    assert runtime.personal is not None
    assert stored_key(runtime, customer) is None, "the restore re-applied the erasure"
    shown = runtime.personal.read_customer(runtime.store, ACCOUNT, customer)
    assert (shown["name"], shown["email"], shown["erased"]) == (None, None, True)


def test_an_api_erasure_needs_an_admin_and_a_reason(tmp_path: Path, data_dir: Path,
                                                    runtimes: Runtimes) -> None:  # fmt: skip
    customer, _ = catalog_and_customer(runtimes.open(data_dir))
    runtimes.close_all()
    with running_server(data_dir, tmp_path) as server, server.client(server.owner_key()) as api:
        path = f"/v1/customers/{customer}/erase"
        assert api.post(path, json={}).status_code == 400  # a reason is required
        done = api.post(path, json={"reason": "customer asked"})
        assert done.status_code == 200, done.text
        assert done.json()["key_destroyed"] is True
        shown = api.get(f"/v1/customers/{customer}").json()
        assert (shown["name"], shown["erased"]) == (None, True)
        assert api.post("/v1/customers/cus_" + "a" * 26 + "/erase",
                        json={"reason": "x"}).status_code == 404  # fmt: skip


def test_erasing_a_0_1_0_plaintext_customer_clears_the_projection_not_the_leaf(
    runtimes: Runtimes, data_dir: Path
) -> None:
    leaves = read_leaves((GOLDEN / "events.jsonl").read_text(encoding="utf-8"))
    runtime = runtimes.open(data_dir)
    import_leaves(runtime.store.engine, leaves)
    rebuild(runtime.store, ACCOUNT, accept_change=True)
    first = json.loads(next(leaf for leaf in leaves if b'"customer.created"' in leaf))
    customer = first["data"]["customer"]
    assert runtime.personal is not None
    shown = runtime.personal.read_customer(runtime.store, ACCOUNT, customer)
    assert (shown["name"], shown["erased"]) == (first["data"]["name"], False)
    with runtime.ledger() as ledger:
        ledger.execute(submission(EraseCustomer(customer), reason="customer asked"))
    shown = runtime.personal.read_customer(runtime.store, ACCOUNT, customer)
    assert (shown["name"], shown["email"], shown["erased"]) == (None, None, True)
    row = licensing_row(runtime, customer)
    assert (row["name"], row["email"]) == (None, None)
    verify_ledger(runtime.store, ACCOUNT)  # the schema-1 leaf (plaintext) is unchanged


def licensing_row(runtime: Runtime, customer: str) -> dict[str, object]:
    with read_transaction(runtime.store.engine) as conn:
        row = projection_rows.read_row(conn, ACCOUNT, "customers", (customer,))
    assert row is not None
    return row
