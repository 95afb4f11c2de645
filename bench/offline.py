"""Benchmark 6 (issue 4, offline operation): local checks, tokens and seat contention.

1. ``LicenseClient.check`` of the SDK on a verified cached token (a cache directory
   written as the SDK writes it, loaded by the constructor, no server), allowed and
   denied entitlements mixed, vs a plain ``dict.get`` on the token's ``ent`` claim.
2. Offline token mint (``jws.sign`` of the claims ``Tokens._claims`` built on a real
   store; and the whole ``Tokens.mint``: store reads + sign) and verify
   (``jws.verify`` with ``iss``/``aud``/``sub``) vs raw Ed25519 sign/verify of the same
   signing input with ``cryptography``; PyJWT's ``jwt.decode`` of the same token as a
   peer. The figures run in interleaved rounds.
3. ``ActivateDevice`` for distinct devices from 16 threads through the in-process
   ledger writer on a license with N seats, M >> N submissions: exactly N are granted,
   the rest are refused with ``SeatLimitReached`` (each refusal is audited in the
   writer's transaction). Limit: raw ``sqlite3`` single-row insert transactions of the
   committed activation leaves (``appends.RawTable``, batch 1, WAL, synchronous=FULL).
"""

from __future__ import annotations

import http.client
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.appends import RawTable
from bench.builder import read_leaves
from bench.common import Options, Result, Timer, temp_dir
from tenure.app.runtime import Runtime
from tenure.config import Settings
from tenure.crypto import jws
from tenure.domain.activations import ActivateDevice, SeatLimitReached, fingerprint_hash
from tenure.domain.commands import (
    CreateCustomer,
    DefineProduct,
    IssueLicense,
    PublishPlan,
    license_serial,
)
from tenure.domain.events import Actor
from tenure.service.apikeys import ensure_bootstrap_owner
from tenure.service.ledger import Ledger, Submission
from tenure.service.tokens import TOKEN_TYP, Tokens

ACCOUNT = "default"
ACTOR = Actor("bench", "admin", "internal")
PRODUCT = "studio"
ENTITLEMENTS: dict[str, bool | int] = {
    "feature:export-pdf": True,
    "feature:cloud-sync": True,
    "feature:scripting": False,
    "seats": 5,
    "quota:api-calls": 10000,
}
# 4 allowed (truthy), 4 denied: false, zero-free missing names.
CHECK_KEYS = [
    "feature:export-pdf",
    "feature:cloud-sync",
    "seats",
    "quota:api-calls",
    "feature:scripting",
    "feature:color-grading",
    "module:analytics",
    "feature:sso",
]
THREADS = 16


@dataclass
class Store:
    runtime: Runtime
    ledger: Ledger
    serial: str
    fingerprint: str
    device_hash: str


def _store(root: Path) -> Store:
    """A real store: a product, a plan with the bench entitlements, one license and
    one activated device (what a token is minted for)."""
    runtime = Runtime.open(Settings(data_dir=root / "store"))
    ledger = runtime.ledger().start()
    commands = [
        DefineProduct(PRODUCT, "Studio", ["export-pdf", "cloud-sync", "scripting"]),
        PublishPlan("bench-pro", PRODUCT, dict(ENTITLEMENTS), core=["feature:export-pdf"]),
    ]
    for command in commands:
        ledger.execute(Submission(ACCOUNT, command, ACTOR))
    serial = _issue(ledger, "bench-pro", "ORD-TOKEN")
    fingerprint = "bench-device-0"
    device = fingerprint_hash(serial, fingerprint)
    lease = runtime.settings.lease_seconds
    ledger.execute(Submission(ACCOUNT, ActivateDevice(serial, device, lease), ACTOR))
    return Store(runtime, ledger, serial, fingerprint, device)


def _issue(ledger: Ledger, plan: str, order: str) -> str:
    customer = ledger.execute(
        Submission(ACCOUNT, _customer(order), ACTOR, None, f"customer-{order}")
    ).result["customer"]
    ledger.execute(Submission(ACCOUNT, IssueLicense(PRODUCT, plan, customer, order), ACTOR))
    return license_serial(ACCOUNT, PRODUCT, customer, order)


def _customer(order: str) -> CreateCustomer:
    return CreateCustomer(f"Customer {order}", f"it@{order.lower()}.example", f"crm-{order}")


def run(opts: Options) -> list[Result]:
    results: list[Result] = []
    with temp_dir("offline", opts.tmp_root) as root:
        store = _store(root)
        try:
            print("\n  [6a] SDK check() on a verified cached token")
            results.append(_checks(opts, store, root / "sdk-cache"))
            print("\n  [6b] offline token mint and verify")
            results += _tokens(opts, store)
            print("\n  [6c] ActivateDevice under contention for the last seats, in process")
            contention, http_serials = _contention(opts, store, root)
            results.append(contention)
        finally:
            store.ledger.close()
            store.runtime.close()
        print("\n  [6d] the same over HTTP: POST /v1/licenses/{serial}/activations")
        results.append(_contention_http(opts, root, http_serials, contention.limit))
    return results


def _report(result: Result) -> Result:
    print(result.line())
    for note in result.notes:
        print(f"    {note}")
    return result


# ---------------------------------------------------------------- 6a: SDK check()


def _checks(opts: Options, store: Store, cache: Path) -> Result:
    from tenure.sdk import LicenseClient

    tokens = store.runtime.tokens()
    minted = tokens.mint(ACCOUNT, store.serial, store.device_hash, datetime.now(UTC))
    keys = store.runtime.keyring().published(ACCOUNT, datetime.now(UTC))
    cache.mkdir()
    # The three files as the SDK's cache writes them after an activation.
    (cache / "token.jws").write_text(minted.token)
    (cache / "jwks.json").write_bytes(orjson.dumps(jws.jwks(keys)))
    state = {"account": ACCOUNT, "until": 0, "last_seen": time.time(), "revoked": None}
    (cache / "state.json").write_bytes(orjson.dumps(state))
    client = LicenseClient(
        "http://127.0.0.1:9",  # never contacted: refresh=False and no activate()
        "unused-offline",
        store.serial,
        store.fingerprint,
        cache,
        refresh=False,
    )
    ent: dict[str, bool | int] = minted.claims["ent"]
    per_round = 200_000 if opts.quick else 1_000_000
    rounds = 3 if opts.quick else 5
    keys_list = (CHECK_KEYS * (per_round // len(CHECK_KEYS) + 1))[:per_round]
    expected = {key: bool(ent.get(key)) for key in CHECK_KEYS}
    for key in CHECK_KEYS:  # the decisions are right before anything is timed
        decision = client.check(key)
        assert decision.allowed == expected[key], (key, decision)
    allowed = sum(expected.values())
    sdk_seconds = dict_seconds = 0.0
    check, get = client.check, ent.get
    try:
        for _ in range(rounds):
            timer = Timer()
            for key in keys_list:
                check(key)
            sdk_seconds += timer.elapsed()
            timer = Timer()
            for key in keys_list:
                get(key)
            dict_seconds += timer.elapsed()
    finally:
        client.close()
    total = per_round * rounds
    rate, limit = total / sdk_seconds, total / dict_seconds
    result = Result(
        "SDK check() on a cached token",
        rate,
        "checks/s",
        limit,
        "plain dict.get",
        "lookups/s",
        "goal >= 1,000,000 checks/s absolute",
        rate >= 1_000_000,
    )
    result.notes.append(
        f"{rounds} interleaved rounds of {per_round:,}; keys {allowed} allowed / "
        f"{len(CHECK_KEYS) - allowed} denied in rotation; {1e9 / rate:.0f} ns per check, "
        f"{1e9 / limit:.0f} ns per dict.get (loop included in both)"
    )
    return _report(result)


# ---------------------------------------------------------------- 6b: tokens


def _tokens(opts: Options, store: Store) -> list[Result]:
    import jwt  # PyJWT, from the bench extra

    now = datetime.now(UTC)
    tokens: Tokens = store.runtime.tokens()
    signing = store.runtime.keyring().current(ACCOUNT, now)
    private = signing.private
    public = private.public_key()
    keys = {signing.kid: public}
    claims = tokens.mint(ACCOUNT, store.serial, store.device_hash, now).claims
    token = jws.sign(claims, private, signing.kid, TOKEN_TYP)
    head, body, _ = token.split(".")
    message = f"{head}.{body}".encode("ascii")
    signature = private.sign(message)
    issuer = tokens.issuer(ACCOUNT)
    ts = now.timestamp()

    def verify_ours() -> None:
        jws.verify(
            token, keys, typ=TOKEN_TYP, now=ts, issuer=issuer, audience=PRODUCT,
            subject=store.serial,
        )  # fmt: skip

    def verify_pyjwt() -> None:
        jwt.decode(
            token, public, algorithms=["EdDSA"], audience=PRODUCT, issuer=issuer,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )  # fmt: skip

    # Same answer from both before timing.
    verify_ours()
    assert jwt.decode(token, public, algorithms=["EdDSA"], audience=PRODUCT, issuer=issuer) == (
        orjson.loads(jws.b64url_decode(body))
    )
    funcs = {
        "jws.sign": lambda: jws.sign(claims, private, signing.kid, TOKEN_TYP),
        "raw sign": lambda: private.sign(message),
        "Tokens.mint": lambda: tokens.mint(ACCOUNT, store.serial, store.device_hash, now),
        "jws.verify": verify_ours,
        "raw verify": lambda: public.verify(signature, message),
        "jwt.decode": verify_pyjwt,
    }
    per_round = 1_000 if opts.quick else 4_000
    rounds = 3 if opts.quick else 5
    seconds = dict.fromkeys(funcs, 0.0)
    counts = dict.fromkeys(funcs, 0)
    for _ in range(rounds):
        for name, func in funcs.items():
            n = per_round // 4 if name == "Tokens.mint" else per_round
            timer = Timer()
            for _ in range(n):
                func()
            seconds[name] += timer.elapsed()
            counts[name] += n
    rate = {name: counts[name] / seconds[name] for name in funcs}
    print(
        f"  token of {len(token)} characters ({len(claims['ent'])} entitlements), "
        f"{rounds} interleaved rounds of {per_round:,} each (Tokens.mint: {per_round // 4:,})"
    )
    found = [
        Result(
            "token mint (jws.sign)", rate["jws.sign"], "tokens/s", rate["raw sign"],
            "raw Ed25519 sign (cryptography)", "sigs/s", "goal >= 0.50",
            rate["jws.sign"] / rate["raw sign"] >= 0.5,
        ),
        Result(
            "token mint (Tokens.mint: store reads + sign)", rate["Tokens.mint"], "tokens/s",
            rate["raw sign"], "raw Ed25519 sign (cryptography)", "sigs/s", "no goal set",
            None,
        ),
        Result(
            "token verify (jws.verify, iss/aud/sub)", rate["jws.verify"], "tokens/s",
            rate["raw verify"], "raw Ed25519 verify (cryptography)", "verifies/s",
            "goal >= 0.50", rate["jws.verify"] / rate["raw verify"] >= 0.5,
        ),
        Result(
            "token verify, Tenure vs PyJWT", rate["jws.verify"], "tokens/s",
            rate["jwt.decode"], f"PyJWT {jwt.__version__} jwt.decode (EdDSA)", "tokens/s",
            "peer figure, no goal", None,
        ),
    ]  # fmt: skip
    per = {name: 1e6 / value for name, value in rate.items()}
    found[1].notes.append(
        f"us per call: jws.sign {per['jws.sign']:.1f}, raw sign {per['raw sign']:.1f}, "
        f"Tokens.mint {per['Tokens.mint']:.1f}"
    )
    found[3].notes.append(
        f"us per call: jws.verify {per['jws.verify']:.1f}, raw verify {per['raw verify']:.1f}, "
        f"jwt.decode {per['jwt.decode']:.1f}"
    )
    return [_report(result) for result in found]


# ---------------------------------------------------------------- 6c: seat contention


@dataclass
class WriterCount:
    """Counts the writer's transactions (every ``_commit`` call) and submissions."""

    transactions: int = 0
    items: int = 0


def _count_commits(ledger: Ledger, count: WriterCount) -> None:
    original = ledger._commit

    def counted(items: list[Any]) -> None:
        original(items)
        count.transactions += 1
        count.items += sum(1 for item in items if item is not None)

    ledger._commit = counted  # type: ignore[method-assign]


def _contend(ledger: Ledger, serial: str, submissions: int, lease: int) -> tuple[int, int, float]:
    """Granted, refused and seconds for ``submissions`` distinct devices from THREADS."""
    shares = [range(i, submissions, THREADS) for i in range(THREADS)]
    granted, refused, errors = [0] * THREADS, [0] * THREADS, []
    barrier = threading.Barrier(THREADS + 1)

    def work(index: int) -> None:
        commands = [
            ActivateDevice(serial, fingerprint_hash(serial, f"device-{n}"), lease)
            for n in shares[index]
        ]
        barrier.wait()
        try:
            for command in commands:
                try:
                    outcome = ledger.execute(Submission(ACCOUNT, command, ACTOR))
                except SeatLimitReached:
                    refused[index] += 1
                else:
                    assert outcome.result["created"]
                    granted[index] += 1
        except BaseException as exc:  # reported after join
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for worker in workers:
        worker.start()
    barrier.wait()
    timer = Timer()
    for worker in workers:
        worker.join()
    seconds = timer.elapsed()
    if errors:
        raise errors[0]
    return sum(granted), sum(refused), seconds


SEATS = 50


def _contention(opts: Options, store: Store, root: Path) -> tuple[Result, list[str]]:
    seats = SEATS
    submissions = 1_000 if opts.quick else 3_000
    rounds = 2 if opts.quick else 4
    ledger, lease = store.ledger, store.runtime.settings.lease_seconds
    ledger.execute(
        Submission(
            ACCOUNT,
            PublishPlan("bench-seats", PRODUCT, {"feature:export-pdf": True, "seats": seats}),
            ACTOR,
        )
    )
    db = root / "store" / "tenure.db"
    raw = RawTable(root / "raw-activations.db")
    count = WriterCount()
    _count_commits(ledger, count)
    total = granted_total = 0
    seconds = raw_seconds = 0.0
    raw_rows = 0
    for number in range(rounds):
        serial = _issue(ledger, "bench-seats", f"ORD-SEATS-{number}")
        start = _head_size(db)
        count.transactions = count.items = 0
        granted, refused, took = _contend(ledger, serial, submissions, lease)
        assert granted == seats, f"{granted} devices granted on {seats} seats"
        assert granted + refused == submissions
        total += submissions
        granted_total += granted
        seconds += took
        transactions, items = count.transactions, count.items
        # The raw limit: as many single-row transactions as submissions, carrying the
        # activation leaves this round committed (cycled).
        leaves = read_leaves(db, ACCOUNT, start)
        rows = [leaves[i % len(leaves)] for i in range(submissions)]
        raw_seconds += raw.insert(rows, 1)
        raw_rows += len(rows)
        print(
            f"  round {number + 1}: {submissions:,} submissions ({granted} granted, "
            f"{refused:,} seat_limit) in {took:.2f} s; writer: {transactions:,} "
            f"transactions, {items / max(transactions, 1):.1f} submissions each"
        )
    raw.close()
    rate, limit = total / seconds, raw_rows / raw_seconds
    result = Result(
        f"ActivateDevice, {THREADS} threads, {seats} seats",
        rate,
        "submissions/s",
        limit,
        "raw sqlite3 single-row insert tx",
        "tx/s",
        "no goal set",
        None,
    )
    result.notes.append(
        f"{rounds} rounds x {submissions:,} distinct devices on a fresh {seats}-seat license: "
        f"exactly {seats} granted each round ({granted_total} in all), the rest refused and "
        f"audited; raw limit interleaved after each round ({raw_rows:,} rows)"
    )
    # Fresh licenses for the HTTP rounds, issued while this process's writer runs.
    http_serials = [_issue(ledger, "bench-seats", f"ORD-HTTP-{n}") for n in range(rounds)]
    return _report(result), http_serials


def _contention_http(opts: Options, root: Path, serials: list[str], raw_limit: float) -> Result:
    """The real app under uvicorn (1 worker, its own ledger writer) on the same store;
    THREADS client threads with keep-alive connections, distinct fingerprints."""
    from bench import checks_http

    submissions = 500 if opts.quick else 1_500
    data_dir = root / "store"
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        api_key = ensure_bootstrap_owner(runtime.store, data_dir, ACCOUNT)
    finally:
        runtime.close()
    assert api_key is not None, "the bench store has no API key yet"
    env = dict(os.environ, TENURE_DATA_DIR=str(data_dir), PYTHONPATH=str(checks_http.REPO))
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    total = 0
    seconds = 0.0
    with checks_http.running(
        "uvicorn", 1, checks_http.CHECK_APP, env, root, "uvicorn activations"
    ) as srv:
        for number, serial in enumerate(serials):
            statuses, took = _http_round(srv.port, serial, submissions, headers)
            granted, refused = statuses.get(201, 0), statuses.get(409, 0)
            assert granted == SEATS, f"{statuses} on {SEATS} seats"
            assert granted + refused == submissions, statuses
            total += submissions
            seconds += took
            print(
                f"  round {number + 1}: {submissions:,} requests ({granted} 201, "
                f"{refused:,} 409 seat_limit) in {took:.2f} s"
            )
    rate = total / seconds
    result = Result(
        f"POST activations over HTTP, {THREADS} clients, {SEATS} seats",
        rate,
        "requests/s",
        raw_limit,
        "raw sqlite3 single-row insert tx (6c)",
        "tx/s",
        "no goal set",
        None,
    )
    result.notes.append(
        f"uvicorn x1, real app (tenure.app:app_from_env), owner API key; "
        f"{len(serials)} rounds x {submissions:,} distinct fingerprints on a fresh "
        f"{SEATS}-seat license; clients share the 2 cores with the server"
    )
    return _report(result)


def _http_round(
    port: int, serial: str, submissions: int, headers: dict[str, str]
) -> tuple[dict[int, int], float]:
    path = f"/v1/licenses/{serial}/activations"
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS + 1)

    def work(index: int) -> None:
        bodies = [
            orjson.dumps({"fingerprint": f"http-device-{n}"}).decode()
            for n in range(index, submissions, THREADS)
        ]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: dict[int, int] = {}
        barrier.wait()
        try:
            for body in bodies:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                if response.status == 409:
                    assert orjson.loads(answer)["type"].endswith("/seat_limit"), answer
                mine[response.status] = mine.get(response.status, 0) + 1
        except BaseException as exc:  # reported after join
            errors.append(exc)
        finally:
            conn.close()
            with lock:
                for status, n in mine.items():
                    statuses[status] = statuses.get(status, 0) + n

    workers = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for worker in workers:
        worker.start()
    barrier.wait()
    timer = Timer()
    for worker in workers:
        worker.join()
    seconds = timer.elapsed()
    if errors:
        raise errors[0]
    return statuses, seconds


def _head_size(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT size FROM ledger_heads WHERE account = ?", (ACCOUNT,)).fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0
