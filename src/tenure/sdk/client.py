"""``LicenseClient``: activate once, then decide locally and keep the token fresh.

Thread model: ``check`` reads ``self._window`` (an immutable snapshot replaced by
assignment) without a lock. Everything that changes the client's state holds
``_lock`` briefly; network sequences (activate, refresh, sync) hold ``_contact`` so
the background thread and the application never interleave two of them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tenure.crypto.trust import TrustAnchor, TrustedKeys
from tenure.errors import InvalidInput, TenureError, TokenRejected
from tenure.ledger.checkpoint import Checkpoint, open_checkpoint
from tenure.sdk.cache import Cache, CacheState, restore
from tenure.sdk.decisions import (
    CLOSED,
    NOT_ACTIVATED,
    PERSIST_EVERY,
    UNTRUSTED_KEY,
    Decision,
    Grant,
    decide,
    open_window,
)
from tenure.sdk.errors import ActivationFailed, CheckFailed, RefreshFailed, SdkError, SyncFailed
from tenure.sdk.proofs import ProofRejected, ProvenCheck, verify_check
from tenure.sdk.refresher import Backoff, Refresher
from tenure.sdk.reporting import DeploymentReporting, report_body, send_report
from tenure.sdk.service import Service
from tenure.sdk.tokens import (
    RevocationList,
    fingerprint_hash,
    revocation_of,
    verify_revocations,
    verify_token,
)

HTTP_TIMEOUT = 10.0
POLL_SECONDS = 30.0
"""The background thread looks at the (possibly injected) clock at least this often."""
IDLE_SECONDS = 60.0
RETRY_CEILING = 600.0
KEY_ROTATION = frozenset({"unknown_kid", "untrusted_key"})
"""Reasons a revocation list's key may just be newer than the cached key set."""


class LicenseClient:
    """The application's side of one license on one device (docs/offline.md).

    The constructor never touches the network: it loads ``cache_dir`` and verifies
    the cached token against the cached key set once (a cache that does not verify
    leaves the client not activated). With ``refresh`` the background refresher starts
    at once; ``stop()`` or ``close()`` (or leaving a ``with`` block) ends it.

    ``ledger_key`` is the account's ledger verifier key (``GET /v1/ledger/key``,
    ``tenure ledger key``): the trust anchor to ship. With it, a token counts only
    when its signing key is vouched for by a key set note that key signed, so nothing
    written into the cache can widen trust (a token signed by another key is denied
    with ``untrusted_key``). Without it the first key set seen is trusted. A string
    that is not a verifier key raises ``InvalidInput``.
    """

    def __init__(
        self,
        url: str,
        license_key: str,
        serial: str,
        fingerprint: str,
        cache_dir: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        http: httpx.Client | None = None,
        refresh: bool = True,
        sync_interval: float = 900.0,
        retry_after: float = 5.0,
        reporting: DeploymentReporting | None = None,
        ledger_key: str | None = None,
    ) -> None:
        self._anchor = TrustAnchor(ledger_key)
        self.url = url.rstrip("/")
        self.serial = serial
        self.fingerprint = fingerprint
        self.device_hash = fingerprint_hash(serial, fingerprint)
        self.sync_interval = sync_interval
        self._clock = clock
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=HTTP_TIMEOUT)
        self._service = Service(self.url, license_key, self._http)
        self._cache = Cache(Path(cache_dir))
        self._lock = threading.RLock()
        self._contact = threading.Lock()
        self._proving = threading.Lock()  # one proven check at a time moves checkpoint.note
        self._backoff = Backoff(retry_after, RETRY_CEILING)
        self._refresher = Refresher(self._background_step, f"tenure-sdk-{serial}")
        self._next_sync = 0.0
        self.reporting = reporting
        self.last_report_error: str | None = None
        """Why the latest deployment report was not stored (None: it was, or none sent)."""
        self._window = CLOSED
        restored = restore(self._cache, self._anchor, serial, self.device_hash, clock())
        self._account: str | None = restored.state.account
        self._until: int = restored.state.until
        self._revoked: str | None = restored.state.revoked
        self._refused: str | None = restored.refused
        self._keys: TrustedKeys | None = restored.keys
        self._grant: Grant | None = restored.grant
        self._last_seen: float = restored.last_seen
        self._persisted_seen: float = restored.state.last_seen
        if refresh:
            self.start()

    # ------------------------------------------------------------ deciding

    def check(self, entitlement: str) -> Decision:
        """Whether this device may use ``entitlement`` now; never raises, never waits
        on the network. Within the token's lifetime this is one clock comparison and
        one dictionary lookup."""
        now = self._clock()
        window = self._window
        if window.floor <= now < window.until:
            return window.decisions.get(entitlement, window.missing)
        return self._check_slowly(entitlement, now)

    def check_proven(self, entitlement: str) -> ProvenCheck:
        """Ask the service, online, whether this license may use ``entitlement`` now,
        and trust the answer only if it is proven (``tenure.sdk.proofs``): signed by
        the ledger key, every row it read under the signed state root, and the same
        decision re-run here over those rows. The newest checkpoint verified is kept
        in the cache (``checkpoint.note``), and every later answer must prove its ledger
        extends it: a history cut or rewritten since raises ``ProofRejected`` with
        reason ``inconsistent_history``. Unlike ``check`` this waits on the network; it
        needs ``ledger_key``. Raises ``CheckFailed`` (the service refused or could not
        be reached) or ``ProofRejected``."""
        if not self._anchor.pinned:
            raise ProofRejected("a proven check needs the ledger_key trust anchor", "unsigned")
        with self._proving:
            known = self._known_checkpoint()
            size = None if known is None else known.size
            answer = self._service.check(self.serial, entitlement, CheckFailed, size)
            now = datetime.fromtimestamp(self._clock(), UTC)
            proven = verify_check(answer, self._anchor.verifiers, entitlement, now, known)
            if known is None or proven.checkpoint.size > known.size:
                with contextlib.suppress(OSError):  # the next check proves from the older one
                    self._cache.save_checkpoint(answer["proof"]["checkpoint"])
            return proven

    def _known_checkpoint(self) -> Checkpoint | None:
        """The cached checkpoint, if it verifies with the ledger key (anything else in
        the file is ignored: a client with no cached checkpoint proves from scratch)."""
        note = self._cache.checkpoint()
        if note is None:
            return None
        try:
            return open_checkpoint(note, self._anchor.verifiers)
        except TenureError:
            return None

    def _check_slowly(self, entitlement: str, now: float) -> Decision:
        with self._lock:
            if now > self._last_seen:
                self._last_seen = now
                self._persist_last_seen()
            revoked = self._revoked is not None
            self._window = open_window(self._grant, revoked, self._last_seen)
            absent = UNTRUSTED_KEY if self._refused else NOT_ACTIVATED
            return decide(self._grant, revoked, entitlement, now, self._last_seen, absent)

    def _persist_last_seen(self) -> None:
        if self._last_seen - self._persisted_seen < PERSIST_EVERY:
            return
        try:
            self._cache.save(state=self._state())
        except OSError:
            # The decision does not depend on this write; the next slow path retries it.
            return
        self._persisted_seen = self._last_seen

    # ------------------------------------------------------------ contacting the service

    def activate(self) -> None:
        """Activate this device, mint a token, verify it and cache it.

        Raises ``ActivationFailed`` whose ``problem`` is the server's error code
        (``seat_limit``, ``license_inactive``, ``unauthenticated`` …), ``unreachable``,
        ``bad_response`` or ``token_rejected`` (``context["reason"]`` names the rule:
        ``untrusted_keyset`` for a key set the ledger key did not sign,
        ``untrusted_key`` for a token whose key it does not vouch for …).
        """
        with self._contact:
            since = self._until
            # Fetched before the activation: every entry in it predates this device's
            # new token, so only its license entries can apply (see revocation_of).
            baseline = self._service.revocations(since, ActivationFailed)
            self._service.activate(self.serial, self.fingerprint, ActivationFailed)
            answer = self._service.mint(self.serial, self.fingerprint, ActivationFailed)
            self._accept(answer, ActivationFailed, (baseline, since))
            self._report()

    def refresh_now(self) -> None:
        """Pull the revocation list, then exchange the current token for the next one.

        The list comes first, so a token revoked while the device was offline is
        dropped, never exchanged for a fresh one: ``RefreshFailed`` with problem
        ``revoked``. A device whose floating lease ended is activated again. Raises
        ``RefreshFailed`` (the current token is kept) when the list cannot be pulled
        or does not verify, or when the service refuses or cannot be reached (if it
        refused, the list was pulled again first).
        """
        with self._contact:
            grant = self._grant
            if grant is None:
                problem = "revoked" if self._revoked else self._refused or "not_activated"
                raise RefreshFailed("there is no token to refresh", problem=problem)
            what = self._sync(RefreshFailed)
            if what is not None:
                raise RefreshFailed(f"the token was revoked ({what})", problem="revoked")
            try:
                answer = self._service.refresh(grant.token, RefreshFailed)
            except RefreshFailed as failed:
                if failed.problem != "not_activated":
                    self._sync_after_refusal(failed)
                self._service.activate(self.serial, self.fingerprint, RefreshFailed)
                answer = self._service.mint(self.serial, self.fingerprint, RefreshFailed)
            self._accept(answer, RefreshFailed, None)
            self._report()

    def _report(self) -> None:
        """Send the deployment report if configured; its failure is only remembered."""
        grant, reporting = self._grant, self.reporting
        if reporting is None or grant is None:
            return
        body = report_body(reporting, grant, self.device_hash)
        self.last_report_error = send_report(self._http, self.url, reporting, body)

    def sync_revocations(self) -> str | None:
        """Pull the revocation list since the cached cursor and apply it.

        Returns what revoked the token (``license_revoked``, ``license_suspended``,
        ``activation`` or ``token``; checks then deny with ``revoked``), else ``None``.
        Raises ``SyncFailed`` when the list cannot be fetched or does not verify.
        """
        with self._contact:
            return self._sync(SyncFailed)

    def _sync_after_refusal(self, failed: RefreshFailed) -> None:
        if not failed.answered:
            raise failed
        try:
            self._sync(RefreshFailed)
        except RefreshFailed as also:
            raise failed from also
        raise failed

    def _sync(self, failure: type[SdkError]) -> str | None:
        account, since = self._account, self._until
        if account is None or self._keys is None:
            raise failure("not activated: no key set to verify with", problem="not_activated")
        text = self._service.revocations(since, failure)
        revocations = self._verified_list(text, account, since, failure)
        with self._lock:
            grant = self._grant
            what = None if grant is None else revocation_of(revocations, grant, licenses_only=False)
            self._until = revocations.until
            if what is not None:
                self._drop(what)
            else:
                self._cache.save(state=self._state())
        return what

    def _verified_list(
        self, text: str, account: str, since: int, failure: type[SdkError]
    ) -> RevocationList:
        try:
            return self._verify_list(text, self._keys, account, since)
        except TokenRejected as rejected:
            if rejected.reason not in KEY_ROTATION:
                raise _rejected(failure, rejected) from None
        # Signed with a key published after ours was cached: a key rotation.
        keys = self._fetch_keys(account, failure)
        try:
            revocations = self._verify_list(text, keys, account, since)
        except TokenRejected as rejected:
            raise _rejected(failure, rejected) from None
        with self._lock:
            self._keys = keys
            self._cache.save(keys=keys, state=self._state())
        return revocations

    def _verify_list(
        self, text: str, keys: TrustedKeys | None, account: str, since: int
    ) -> RevocationList:
        if keys is None:
            raise TokenRejected("no key set to verify with", "unknown_kid")
        now = self._clock()
        return verify_revocations(
            text, keys, since=since, now=now, account=account, serial=self.serial
        )

    def _fetch_keys(self, account: str, failure: type[SdkError]) -> TrustedKeys:
        """The account's keys from the service at this client's URL: the key set
        note (verified against the ledger key) or, without one, the JWKS."""
        if self._anchor.pinned:
            document = self._service.keyset(failure)
        else:
            document = self._service.jwks(account, failure)
        try:
            return self._anchor.trust(document, account)
        except InvalidInput as error:
            raise failure(f"unusable key set: {error.message}", problem="bad_response") from None
        except TokenRejected as rejected:
            raise _rejected(failure, rejected) from None

    def _accept(
        self, answer: dict[str, Any], failure: type[SdkError], baseline: tuple[str, int] | None
    ) -> None:
        """Verify a freshly minted token (and a baseline revocation list) and install it."""
        token, account = answer.get("token"), answer.get("account")
        if type(token) is not str or type(account) is not str:
            raise failure("the answer has no token or account", problem="bad_response")
        keys = self._fetch_keys(account, failure)
        now = self._clock()
        try:
            grant = verify_token(
                token, keys, serial=self.serial, device_hash=self.device_hash,
                account=account, now=now,
            )  # fmt: skip
        except TokenRejected as rejected:
            raise _rejected(failure, rejected) from None
        until, what = self._until, None
        if baseline is not None:
            with self._lock:
                self._keys = keys
            revocations = self._verified_list(baseline[0], account, baseline[1], failure)
            until, what = revocations.until, revocation_of(revocations, grant, licenses_only=True)
        with self._lock:
            # A token that verified bounds the clock (nbf - 60 s <= now): it re-anchors
            # the latest time seen, so a corrected clock recovers from a rollback.
            self._grant, self._keys, self._account = grant, keys, account
            self._until, self._revoked, self._refused = until, None, None
            self._last_seen = self._persisted_seen = max(now, float(grant.issued_at))
            self._cache.save(token=token, keys=keys, state=self._state())
            self._window = CLOSED
            if what is not None:
                self._drop(what)

    def _drop(self, what: str) -> None:
        with self._lock:
            self._window = CLOSED
            self._grant, self._revoked = None, what
            self._cache.drop_token(self._state())

    # ------------------------------------------------------------ background

    def start(self) -> None:
        """Start the background refresher (idempotent)."""
        self._refresher.start()

    def stop(self) -> None:
        """Stop the background refresher and wait for it."""
        self._refresher.stop()

    def close(self) -> None:
        """Stop, write the latest time seen, and close the HTTP client if it is ours."""
        self.stop()
        with self._lock:
            if self._last_seen > self._persisted_seen:
                self._cache.save(state=self._state())
                self._persisted_seen = self._last_seen
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> LicenseClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _background_step(self) -> float:
        grant, now = self._grant, self._clock()
        if grant is None:
            return IDLE_SECONDS
        refresh_due = now >= grant.refresh_at
        if not refresh_due and now < self._next_sync:
            return min(POLL_SECONDS, grant.refresh_at - now, self._next_sync - now)
        try:
            if refresh_due:
                self.refresh_now()
            else:
                self.sync_revocations()
        except SdkError:
            return self._backoff.failed()
        self._backoff.reset()
        self._next_sync = now + self.sync_interval
        return 0.0

    # ------------------------------------------------------------ the cache

    def _state(self) -> CacheState:
        return CacheState(self._account, self._until, self._last_seen, self._revoked)


def _rejected(failure: type[SdkError], rejected: TokenRejected) -> SdkError:
    message = f"the service sent something that does not verify: {rejected.message}"
    return failure(message, problem="token_rejected", reason=rejected.reason)
