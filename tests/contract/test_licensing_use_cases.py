"""The licensing, activation, catalog and token use cases (``tenure.service.handlers``)
on a real SQLite store with the real ledger writer: what each answers, what it
refuses before anything is submitted, which changes become approval requests, and
what the audit chain holds afterwards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from support.shop import ACCOUNT, Runtimes
from tenure.app.runtime import Runtime
from tenure.domain.commands import IssueLicense
from tenure.errors import Forbidden, InvalidInput, NotFound
from tenure.service import apikeys, audit
from tenure.service.apikeys import Principal
from tenure.service.audit import AuditEntry
from tenure.service.handlers import activations as activation_cases
from tenure.service.handlers import catalog as catalog_cases
from tenure.service.handlers import licensing as cases
from tenure.service.handlers import tokens as token_cases
from tenure.service.ledger import Ledger, Outcome
from tenure.service.personal import PersonalData
from tenure.service.views import ApprovalPending

CATALOG = """
products:
  - code: studio
    name: Studio
    features: [export-pdf]
plans:
  - code: pro
    product: studio
    entitlements: {feature:export-pdf: true, seats: 2}
    core: [feature:export-pdf]
    duration: P30D
    offline_token_ttl: PT24H
"""


class Shop:
    """One runtime, its ledger writer and an owner key acting through the use cases."""

    def __init__(self, runtime: Runtime, ledger: Ledger) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.owner, _ = apikeys.create_api_key(runtime.store, ACCOUNT, "owner", "owner")
        self.recorded: list[AuditEntry] = []
        assert runtime.personal is not None
        self.personal: PersonalData = runtime.personal

    def submit(self, request: Any) -> Outcome:
        return self.ledger.execute(request)

    def record(self, entries: Sequence[AuditEntry]) -> None:
        self.recorded.extend(entries)

    def customer(self, external_id: str = "c1") -> str:
        customer, _ = cases.create_customer(
            self.submit, self.runtime.store, self.personal, self.owner,
            "Ada", "ada@example.test", external_id,
        )  # fmt: skip
        return str(customer["id"])

    def issue(self, customer: str, order: str = "o1") -> dict[str, Any]:
        order_of = IssueLicense("studio", "pro", customer, order)
        issued = cases.issue_license(
            self.submit, self.runtime.store, self.runtime.license_keys, self.owner, order_of
        )
        return dict(issued)

    def actions(self) -> list[tuple[str, str, str]]:
        with self.runtime.store.read() as tx:
            found, _ = audit.page(tx.audit, ACCOUNT, limit=100)
        return [(e["action"], e["outcome"], e["code"]) for e in found]


def _shop(runtimes: Runtimes, data_dir: Path, **settings: Any) -> Iterator[Shop]:
    runtime = runtimes.open(data_dir, **settings)
    with runtime.ledger() as ledger:
        shop = Shop(runtime, ledger)
        applied = catalog_cases.apply_catalog(
            shop.submit, runtime.store, runtime.settings, shop.owner, CATALOG, dry_run=False
        )
        assert not isinstance(applied, ApprovalPending)
        yield shop


@pytest.fixture
def shop(runtimes: Runtimes, data_dir: Path) -> Iterator[Shop]:
    yield from _shop(runtimes, data_dir)


@pytest.fixture
def strict_shop(runtimes: Runtimes, data_dir: Path) -> Iterator[Shop]:
    """A shop whose second revocation within the window needs approval."""
    yield from _shop(runtimes, data_dir, approval_revoke_threshold=1)


# ---------------------------------------------------------------- customers


def test_the_same_external_id_with_the_same_details_finds_the_customer(shop: Shop) -> None:
    store, personal = shop.runtime.store, shop.personal
    first, created = cases.create_customer(
        shop.submit, store, personal, shop.owner, "Ada", "ada@example.test", "x1"
    )
    again, created_again = cases.create_customer(
        shop.submit, store, personal, shop.owner, "Ada", "ada@example.test", "x1"
    )
    assert (created, created_again, again) == (True, False, first)
    assert cases.get_customer(store, personal, shop.owner, first["id"])["name"] == "Ada"


def test_an_erased_customer_loses_its_data_key_and_its_personal_fields(shop: Shop) -> None:
    customer = shop.customer()
    erased = cases.erase_customer(
        shop.submit, shop.runtime.store, shop.personal, shop.owner, customer, "gdpr"
    )
    assert erased == {
        "customer": customer,
        "erased": True,
        "already": False,
        "key_destroyed": True,
    }
    shown = cases.get_customer(shop.runtime.store, shop.personal, shop.owner, customer)
    assert (shown["name"], shown["email"], shown["erased"]) == (None, None, True)


# ---------------------------------------------------------------- licenses


def test_issuing_the_same_order_again_answers_the_same_license_and_key(shop: Shop) -> None:
    customer = shop.customer()
    first = shop.issue(customer)
    again = shop.issue(customer)
    assert first["created"] is True
    assert again["created"] is False
    assert (again["serial"], again["key"]) == (first["serial"], first["key"])
    assert ("issue_license", "allowed", "ok") in shop.actions()


def test_an_unknown_customer_is_refused_before_anything_is_submitted(shop: Shop) -> None:
    before = shop.actions()
    with pytest.raises(NotFound) as refused:
        cases.issue_license(
            shop.submit, shop.runtime.store, shop.runtime.license_keys, shop.owner,
            IssueLicense("studio", "pro", "cus_missing", "o1"), "bad key with spaces",
        )  # fmt: skip
    assert refused.value.context["field"] == "customer"  # the malformed key: never looked at
    assert shop.actions() == before


def test_a_malformed_idempotency_key_is_refused_when_the_change_is_submitted(
    shop: Shop,
) -> None:
    serial = shop.issue(shop.customer())["serial"]
    with pytest.raises(InvalidInput) as refused:
        cases.suspend_license(
            shop.submit, shop.runtime.store, shop.owner, serial, "fraud", "x" * 256
        )
    assert refused.value.field == "Idempotency-Key"


def test_suspend_and_reinstate_answer_the_license_as_it_is_after(shop: Shop) -> None:
    store = shop.runtime.store
    serial = shop.issue(shop.customer())["serial"]
    suspended = cases.suspend_license(shop.submit, store, shop.owner, serial, "fraud", "k1")
    assert suspended["status"] == "suspended"
    again = cases.suspend_license(shop.submit, store, shop.owner, serial, "fraud", "k1")
    assert again == suspended  # the same idempotency key: nothing appended twice
    reinstated = cases.reinstate_license(shop.submit, store, shop.owner, serial, None)
    assert reinstated["status"] == "active"


def test_an_override_of_the_wrong_kind_is_invalid_input_on_value(shop: Shop) -> None:
    serial = shop.issue(shop.customer())["serial"]
    with pytest.raises(InvalidInput) as refused:
        cases.override_entitlement(
            shop.submit, shop.runtime.store, shop.owner, serial, "seats", True, "why"
        )
    assert refused.value.field == "value"
    changed = cases.override_entitlement(
        shop.submit, shop.runtime.store, shop.owner, serial, "seats", 9, "why"
    )
    assert changed["overrides"] == {"seats": 9}


def test_a_transfer_to_an_unknown_customer_is_not_found_on_customer(shop: Shop) -> None:
    serial = shop.issue(shop.customer())["serial"]
    with pytest.raises(NotFound) as refused:
        cases.transfer_license(
            shop.submit, shop.runtime.store, shop.owner, serial, "cus_missing", None
        )
    assert refused.value.context["field"] == "customer"


def test_the_revocation_that_crosses_the_threshold_becomes_an_approval_request(
    strict_shop: Shop,
) -> None:
    shop = strict_shop
    runtime, customer = shop.runtime, shop.customer()
    first, second = shop.issue(customer, "o1")["serial"], shop.issue(customer, "o2")["serial"]
    revoke = cases.revoke_license
    revoked = revoke(shop.submit, runtime.store, runtime.settings, shop.owner, first, "fraud")
    assert not isinstance(revoked, ApprovalPending)
    assert revoked["status"] == "revoked"
    gated = revoke(shop.submit, runtime.store, runtime.settings, shop.owner, second, "fraud")
    assert isinstance(gated, ApprovalPending)
    assert (gated.approval["action"], gated.approval["payload"]) == (
        "license.revoke",
        {"serials": [second]},
    )
    assert cases.get_license(runtime.store, shop.owner, second)["status"] == "active"


# ---------------------------------------------------------------- activations


def test_a_license_holder_sees_no_activation_of_another_license(shop: Shop) -> None:
    store, customer = shop.runtime.store, shop.customer()
    serial = shop.issue(customer)["serial"]
    activation, created = activation_cases.activate_device(
        shop.submit, shop.owner, serial, "device-1", 900
    )
    assert created
    assert activation["status"] == "active"
    with pytest.raises(NotFound):
        activation_cases.renew_lease(
            shop.submit, store, shop.owner, "LIC-OTHER", activation["id"], 900
        )
    gone = activation_cases.deactivate_device(
        shop.submit, store, shop.owner, serial, activation["id"]
    )
    assert gone["status"] == "deactivated"
    listed = activation_cases.list_activations(store, shop.owner, serial)
    assert [a["id"] for a in listed["activations"]] == [activation["id"]]


# ---------------------------------------------------------------- catalog


def test_retiring_a_plan_asks_for_approval_and_an_unknown_plan_is_not_found(shop: Shop) -> None:
    runtime = shop.runtime
    pending = catalog_cases.retire_plan(
        shop.submit, runtime.store, runtime.settings, shop.owner, "pro", "old"
    )
    assert (pending.approval["action"], pending.approval["target"]) == ("plan.retire", "pro")
    with pytest.raises(NotFound):
        catalog_cases.retire_plan(
            shop.submit, runtime.store, runtime.settings, shop.owner, "nope", "old"
        )


def test_a_dry_run_answers_the_diff_and_appends_nothing(shop: Shop) -> None:
    runtime = shop.runtime
    changed = CATALOG.replace("seats: 2", "seats: 3")
    diff = catalog_cases.apply_catalog(
        shop.submit, runtime.store, runtime.settings, shop.owner, changed, dry_run=True
    )
    assert not isinstance(diff, ApprovalPending)
    assert diff.changes == 1
    again = catalog_cases.apply_catalog(
        shop.submit, runtime.store, runtime.settings, shop.owner, changed, dry_run=True
    )
    assert not isinstance(again, ApprovalPending)
    assert again.changes == 1


# ---------------------------------------------------------------- tokens


def test_a_minted_token_is_audited_through_the_recorder(shop: Shop) -> None:
    runtime = shop.runtime
    serial = shop.issue(shop.customer())["serial"]
    held, _ = activation_cases.activate_device(shop.submit, shop.owner, serial, "device-1", 900)
    minted = token_cases.mint_token(
        shop.submit, shop.record, runtime.tokens(), runtime.settings, shop.owner, serial,
        "device-1",
    )  # fmt: skip
    assert minted["account"] == ACCOUNT
    assert minted["jwks_url"] == "/.well-known/jwks.json?account=default"
    [entry] = shop.recorded
    assert (entry.action, entry.target, entry.detail) == (
        "mint_token",
        serial,
        {"jti": minted["jti"], "activation": held["id"]},
    )


def test_refreshing_another_licenses_token_is_forbidden_to_a_license_holder(
    shop: Shop,
) -> None:
    runtime = shop.runtime
    serial = shop.issue(shop.customer())["serial"]
    activation_cases.activate_device(shop.submit, shop.owner, serial, "device-1", 900)
    minted = token_cases.mint_token(
        shop.submit, shop.record, runtime.tokens(), runtime.settings, shop.owner, serial,
        "device-1",
    )  # fmt: skip
    with pytest.raises(Forbidden):
        token_cases.refresh_token(
            shop.submit, shop.record, runtime.tokens(), runtime.settings, shop.owner,
            "LIC-OTHER", minted["token"],
        )  # fmt: skip
    assert len(shop.recorded) == 1


def test_a_malformed_license_file_lifetime_activates_nothing(shop: Shop) -> None:
    runtime = shop.runtime
    serial = shop.issue(shop.customer())["serial"]
    with pytest.raises(InvalidInput) as refused:
        token_cases.issue_license_file(
            shop.submit, shop.record, runtime.tokens(), runtime.license_keys, runtime.settings,
            shop.owner, serial, "device-1", "soon", False,
        )  # fmt: skip
    assert refused.value.field == "expires"
    listed = activation_cases.list_activations(runtime.store, shop.owner, serial)
    assert listed["activations"] == []
    assert shop.recorded == []


def test_a_revoked_token_is_answered_as_revoked(shop: Shop) -> None:
    serial = shop.issue(shop.customer())["serial"]
    jti = "tok_" + "a" * 26
    revoked = token_cases.revoke_token(shop.submit, shop.owner, serial, jti, "lost laptop")
    assert revoked == {"serial": serial, "jti": jti, "revoked": True}


def test_asking_to_rotate_the_signing_key_is_an_approval_request(shop: Shop) -> None:
    owner: Principal = shop.owner
    pending = token_cases.request_rotation(shop.submit, shop.runtime.settings, owner)
    assert (pending.approval["action"], pending.approval["target"]) == ("keys.rotate", ACCOUNT)


def test_the_signed_keyset_of_an_account_names_its_ledger_origin(shop: Shop) -> None:
    runtime = shop.runtime
    note = token_cases.signed_keyset(shop.submit, runtime.tokens(), runtime.keystore, shop.owner)
    assert note.splitlines()[0] == runtime.settings.ledger_origin(ACCOUNT)


def test_the_local_operators_erasure_is_recorded_as_local(shop: Shop) -> None:
    customer = shop.customer()
    operator = Principal("cli:ops", ACCOUNT, "admin", "local")
    cases.erase_customer(shop.submit, shop.runtime.store, shop.personal, operator, customer, "gdpr")
    with shop.runtime.store.read() as tx:
        found, _ = audit.page(tx.audit, ACCOUNT, limit=100)
    erased = [e for e in found if e["action"] == "erase_customer"]
    assert [e["principal"] for e in erased] == [{"id": "cli:ops", "role": "admin", "auth": "local"}]
