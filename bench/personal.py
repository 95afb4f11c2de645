"""Benchmark 11 (issue 7, personal data): what sealing customers' personal data costs.

1. Customer creation through the real writer (``Runtime.ledger``), one command per
   transaction, with ``TENURE_ENCRYPT_PERSONAL_DATA`` true (a data key created,
   wrapped and stored as a row of the writer's transaction per customer, two
   AES-GCM seals) vs false
   (plaintext, as 0.1.0). Interleaved rounds; the limit is the plaintext rate.
2. License checks (``tenure.service.checks.check`` on the store, by serial) on a
   store written with encryption vs one without. Checks read license, plan and
   checkpoint rows only, never a customer's personal data, so the figure should be
   unchanged (ratio ~1.0); it is measured to show that.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench.common import Options, Result, Timer, temp_dir
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.domain.commands import CreateCustomer, DefineProduct, IssueLicense, PublishPlan
from tenure.domain.events import Actor
from tenure.service import checks
from tenure.service.ledger import Ledger, Submission

ACCOUNT = "default"
ACTOR = Actor("bench", "owner", "internal")


def _submit(ledger: Ledger, command: object) -> dict[str, object]:
    sub = Submission(ACCOUNT, command, ACTOR)  # type: ignore[arg-type]
    return ledger.execute(sub).result


def _create(root: Path, encrypt: bool, start: int, count: int) -> float:
    """Customers created per second (one command per transaction) on ``root``."""
    settings = Settings(data_dir=root, encrypt_personal_data=encrypt)
    runtime = Runtime.open(settings)
    try:
        with runtime.ledger() as ledger:
            timer = Timer()
            for i in range(start, start + count):
                command = CreateCustomer(f"Customer {i}", f"it@customer{i}.example", f"crm-{i}")
                _submit(ledger, command)
            return count / timer.elapsed()
    finally:
        runtime.close()


def _license_store(root: Path, encrypt: bool) -> list[str]:
    """A store of 50 customers (sealed or not) with a license each: their serials."""
    runtime = Runtime.open(Settings(data_dir=root, encrypt_personal_data=encrypt))
    try:
        with runtime.ledger() as ledger:
            _submit(ledger, DefineProduct("studio", "Studio", ["export-pdf"]))
            _submit(ledger, PublishPlan("pro", "studio", {"feature:export-pdf": True}))
            serials = []
            for i in range(50):
                made = _submit(ledger, CreateCustomer(f"C {i}", f"c{i}@x.example", f"k-{i}"))
                issued = _submit(ledger, IssueLicense("studio", "pro", str(made["customer"]), "o"))
                serials.append(str(issued["serial"]))
        return serials
    finally:
        runtime.close()


def _checks(root: Path, serials: list[str], count: int) -> float:
    """Checks by serial per second on the store at ``root``."""
    runtime = Runtime.open(Settings(data_dir=root))
    try:
        now = datetime.now(UTC)
        timer = Timer()
        for i in range(count):
            item = checks.CheckItem(serials[i % 50], "feature:export-pdf")
            checks.check(runtime.store, ACCOUNT, item, now)
        return count / timer.elapsed()
    finally:
        runtime.close()


def run(opts: Options) -> list[Result]:
    creates, rounds, check_count = (200, 3, 2000) if opts.quick else (1000, 5, 20000)
    rates: dict[bool, list[float]] = {True: [], False: []}
    check_rates: dict[bool, float] = {}
    with temp_dir("personal", opts.tmp_root) as tmp:
        for r in range(rounds):
            for encrypt in (False, True):  # interleaved: drift hits both alike
                store = tmp / f"create-{encrypt}"
                rates[encrypt].append(_create(store, encrypt, r * creates, creates))
        stores = {e: _license_store(tmp / f"checks-{e}", e) for e in (False, True)}
        for _ in range(rounds):
            for encrypt in (False, True):
                rate = _checks(tmp / f"checks-{encrypt}", stores[encrypt], check_count)
                check_rates[encrypt] = max(check_rates.get(encrypt, 0.0), rate)
    sealed, plain = max(rates[True]), max(rates[False])
    print(f"  customer create: sealed {sealed:,.0f}/s, plaintext {plain:,.0f}/s (best rounds)")
    print(f"  checks: sealed store {check_rates[True]:,.0f}/s, plain {check_rates[False]:,.0f}/s")
    return [
        Result(
            "customer create, personal data sealed",
            sealed,
            "customers/s",
            plain,
            "plaintext (encryption disabled)",
            "customers/s",
            "report (one key file with fsync per customer)",
            None,
        ),
        Result(
            "checks by serial, encryption at rest enabled",
            check_rates[True],
            "checks/s",
            check_rates[False],
            "encryption disabled",
            "checks/s",
            "unchanged (checks never read personal data)",
            None,
        ),
    ]
