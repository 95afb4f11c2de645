"""Crash drill for decisions (issue 19): no answered check without its audit entry.

A real ``tenure serve`` on one data dir; client threads stream checks — an active
license and a revoked one, an entitlement granted and one not, by API key and by
License key — each with a fingerprint of its own, so that its audit entry can be
found (the entry keeps ``sha256:`` + 16 hex digits of it). The main thread SIGKILLs
the server at random moments (seeded) and restarts it on the same data dir,
``TENURE_CHECK_CRASH_KILLS`` times (4 by default; half as many with
``TENURE_DECISION_SYNC=os``, which must keep the same promise against a crash of the
process). Then every check that was answered
200 must have its entry in the audit log, with the same outcome and reason, and
``tenure audit verify`` must pass: the answers left only once their entries were
durable, whatever moment the kill chose. (Checks in flight when a kill came may be in
the log or not; they were never answered.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from support.api import apply_example_catalog, issue_license
from support.cli import tenure
from support.server import STOP_TIMEOUT, Server, start_server
from tenure.service.audit import short_hash

KILLS = int(os.environ.get("TENURE_CHECK_CRASH_KILLS", "4"))
SEED = int(os.environ.get("TENURE_CRASH_SEED", "20261208"))
KILL_DELAY = (0.2, 0.8)
"""Seconds between a restart becoming healthy and the next SIGKILL."""
CLIENTS = 3
ATTEMPT_TIMEOUT = 2.0
ACCOUNT = "default"


@dataclass
class Stream:
    """What one client thread shares with the main thread."""

    name: str
    auth: str
    questions: list[dict[str, str]]
    url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    answered: dict[str, tuple[str, str]] = field(default_factory=dict)
    """fingerprint → (outcome, reason) of every check answered 200."""
    failures: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    def move_to(self, url: str) -> None:
        with self.lock:
            self.url = url

    def run(self) -> None:
        try:
            self._check_forever()
        except BaseException as exc:  # reported by the main thread
            self.error = f"{self.name} crashed: {exc!r}"

    def _check_forever(self) -> None:
        headers = {"Authorization": self.auth}
        with httpx.Client(headers=headers, timeout=ATTEMPT_TIMEOUT) as http:
            i = 0
            while not self.stop.is_set():
                fingerprint = f"{self.name}-{i}"
                body = {**self.questions[i % len(self.questions)], "fingerprint": fingerprint}
                i += 1
                with self.lock:
                    url = self.url
                try:
                    answer = http.post(f"{url}/v1/check", json=body)
                except httpx.TransportError:
                    self.failures["transport"] += 1
                    time.sleep(0.02)
                    continue
                if answer.status_code >= 500:
                    self.failures[str(answer.status_code)] += 1
                    continue
                if answer.status_code != 200:
                    self.error = f"{self.name}: {answer.status_code} {answer.text}"
                    return
                decided = answer.json()
                outcome = "allowed" if decided["allowed"] else "denied"
                self.answered[fingerprint] = (outcome, decided["reason"])


def _audited_checks(data_dir: Path) -> dict[str, tuple[str, str]]:
    """The audit log's check entries: fingerprint hash → (outcome, reason)."""
    uri = f"file:{data_dir / 'tenure.db'}?mode=ro"
    found: dict[str, tuple[str, str]] = {}
    with sqlite3.connect(uri, uri=True, timeout=10) as db:
        rows = db.execute(
            "SELECT outcome, entry FROM audit_log WHERE account = ? AND action = 'check'",
            (ACCOUNT,),
        ).fetchall()
    for outcome, entry in rows:
        body = json.loads(entry)
        fingerprint = (body.get("detail") or {}).get("fingerprint")
        if fingerprint is not None:
            found[fingerprint] = (outcome, body["code"])
    return found


@pytest.mark.slow
@pytest.mark.timeout(120 + 20 * KILLS)
@pytest.mark.parametrize(("sync", "kills"), [("disk", KILLS), ("os", max(2, KILLS // 2))])
def test_every_answered_check_is_in_the_audit_log_across_sigkills(
    tmp_path: Path, sync: str, kills: int
) -> None:
    """With ``TENURE_DECISION_SYNC=os`` too: its commits do not wait for the disk,
    but what the operating system holds survives a crash of the server process."""
    data_dir, log_dir = tmp_path / "data", tmp_path / "logs"
    log_dir.mkdir()
    rng = random.Random(SEED)
    setting = {"TENURE_DECISION_SYNC": sync}
    server: Server = start_server(data_dir, log_dir, **setting)
    streams: list[Stream] = []
    threads: list[threading.Thread] = []
    try:
        key = server.owner_key()
        with server.client(key) as owner:
            apply_example_catalog(owner)
            active, gone = issue_license(owner), issue_license(owner)
            revoked = owner.post(f"/v1/licenses/{gone['serial']}/revoke", json={"reason": "x"})
            assert revoked.status_code == 200, revoked.text
        questions = [
            {"license": active["serial"], "entitlement": "seats"},
            {"license": active["serial"], "entitlement": "feature:no-such-feature"},
            {"license": gone["serial"], "entitlement": "seats"},
            {"license": active["key"], "entitlement": "seats"},
        ]
        auths = [f"Bearer {key}"] * (CLIENTS - 1) + [f"License {active['key']}"]
        for n, auth in enumerate(auths):
            asked = questions if auth.startswith("Bearer") else [questions[3]]
            streams.append(Stream(f"client{n}", auth, asked, server.url))
        threads = [threading.Thread(target=s.run, daemon=True) for s in streams]
        for thread in threads:
            thread.start()

        for _ in range(kills):
            time.sleep(rng.uniform(*KILL_DELAY))
            for stream in streams:
                assert stream.error is None, stream.error
            server.process.kill()  # SIGKILL
            assert server.process.wait(timeout=STOP_TIMEOUT) == -signal.SIGKILL
            server = start_server(data_dir, log_dir, **setting)
            for stream in streams:
                stream.move_to(server.url)

        time.sleep(0.5)  # the last server answers some too
        for stream in streams:
            stream.stop.set()
        for thread in threads:
            thread.join(timeout=3 * ATTEMPT_TIMEOUT + 5)
            assert not thread.is_alive(), "a client thread did not stop"
        for stream in streams:
            assert stream.error is None, stream.error
        assert server.stop() in (0, -signal.SIGTERM), server.logs()
    finally:
        for stream in streams:
            stream.stop.set()
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=STOP_TIMEOUT)

    answered = {fp: a for stream in streams for fp, a in stream.answered.items()}
    audited = _audited_checks(data_dir)
    missing = {fp: a for fp, a in answered.items() if short_hash(fp) not in audited}
    assert missing == {}, f"{len(missing)} answered checks are not in the audit log"
    differing = {fp: a for fp, a in answered.items() if audited[short_hash(fp)] != a}
    assert differing == {}, "audit entries that say otherwise than the answer"
    outcomes = Counter(outcome for outcome, _ in answered.values())
    assert outcomes["allowed"] > 0, outcomes
    assert outcomes["denied"] > 0, outcomes
    failures = sum((s.failures for s in streams), Counter[str]())
    assert failures["transport"] > 0, "no kill landed while checks were on the wire"
    verified = tenure("audit", "verify", "--data-dir", data_dir, "--output", "json")
    assert verified.code == 0, verified.stdout + verified.stderr
    print(
        f"{sync}: {len(answered)} checks answered across {kills} kills, all audited; "
        f"{dict(outcomes)}; unanswered: {dict(failures)}"
    )
