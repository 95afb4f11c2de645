"""The error tree. Every failure Tenure reports has a stable ``code``.

HTTP status codes are mapped from these classes in ``tenure.api.problems`` only;
the CLI prints ``str(error)`` as one line.
"""

from __future__ import annotations

from typing import Any


class TenureError(Exception):
    """Base class: a failure with a stable machine-readable code."""

    code = "tenure_error"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class InvalidInput(TenureError):
    """Input that does not have the required shape; ``field`` names the culprit."""

    code = "invalid_input"

    def __init__(self, message: str, field: str | None = None, **context: Any) -> None:
        super().__init__(message, field=field, **context)
        self.field = field


class UnstorableValue(InvalidInput):
    """A value the database refused to store (PostgreSQL: a NUL character, a value
    over an index's size limit) that got past the checks at the edge. Only the
    request that carried it fails: the others of its write batch are retried
    without it."""

    code = "unstorable_value"


class MalformedEvent(InvalidInput):
    """An event (or its leaf bytes) that does not follow the envelope or its type's schema."""

    code = "malformed_event"


class UnknownEventType(MalformedEvent):
    """An event type (or schema version) this release does not know."""

    code = "unknown_event_type"


class NotFound(TenureError):
    """The named object does not exist in the caller's account."""

    code = "not_found"


class Conflict(TenureError):
    """The command is well-formed but the current state forbids it."""

    code = "conflict"


class IdempotencyKeyReused(Conflict):
    """The idempotency key was already used for a different request."""

    code = "idempotency_key_reused"


class InvalidProof(TenureError):
    """A Merkle proof, or the parameters asked for one, do not check out."""

    code = "invalid_proof"


class MalformedNote(TenureError):
    """Text that is not a well-formed signed note, checkpoint or verifier key."""

    code = "malformed_note"


class UnverifiedNote(TenureError):
    """A signed note that carries no valid signature from a trusted key."""

    code = "unverified_note"


class LedgerTampered(TenureError):
    """Stored events, nodes or checkpoints disagree; ``seq`` is the first bad one."""

    code = "ledger_tampered"

    def __init__(self, message: str, seq: int | None = None, **context: Any) -> None:
        super().__init__(message, seq=seq, **context)
        self.seq = seq


class StateTampered(LedgerTampered):
    """A stored projection row, state-map leaf, bucket or root, or a checkpoint's
    ``tenure-state`` line, is not what a replay of the ledger gives; ``table`` and
    ``key`` name the first differing row when it is one."""

    def __init__(
        self, message: str, table: str | None = None, key: list[Any] | None = None
    ) -> None:
        super().__init__(message, seq=None, table=table, key=key)
        self.table, self.key = table, key


class StoreBehindCheckpoint(TenureError):
    """The store holds fewer events than (or disagrees with) the last signed checkpoint.

    Appending or signing would fork the log, so both are refused until the missing
    events are recovered.
    """

    code = "store_behind_checkpoint"


class StateUnverified(TenureError):
    """The stored projection does not prove against the state map's root (docs/state.md):
    checks and appends are refused until ``tenure state rebuild`` or a restore."""

    code = "state_unverified"


class DigestMismatch(TenureError):
    """A replayed projection does not produce the state digest it should."""

    code = "digest_mismatch"


class Unauthenticated(TenureError):
    """No valid credentials were presented."""

    code = "unauthenticated"


class ConfigurationError(TenureError):
    """Settings or files on disk are missing or unusable."""

    code = "configuration_error"


class Forbidden(TenureError):
    """The principal's role does not allow this action."""

    code = "forbidden"


class AuditTampered(LedgerTampered):
    """The audit chain is broken; ``seq`` is the first audit entry that is wrong and
    ``column``, when one column of its row is at fault, names that column."""

    code = "audit_tampered"

    def __init__(
        self, message: str, seq: int | None = None, column: str | None = None, **context: Any
    ) -> None:
        super().__init__(message, seq=seq, column=column, **context)
        self.column = column


class StorageUnavailable(TenureError):
    """A write could not be committed (nor, therefore, audited): nothing of it stands.

    The request fails closed; retrying it (with the same ``Idempotency-Key``) is safe.
    Also raised for reads while the database cannot be reached.
    """

    code = "storage_unavailable"
    retry_after = 1
    """Seconds a client should wait before retrying (HTTP ``Retry-After``): a database
    restart takes a second or two."""


class TokenRejected(TenureError):
    """A JWS (offline token, revocation list, license file body) failed verification.

    ``reason`` is a stable short string naming the first rule the token broke, e.g.
    ``malformed``, ``bad_header``, ``alg_not_allowed``, ``typ_mismatch``,
    ``unknown_kid``, ``bad_signature``, ``bad_claim``, ``duplicate_claim``,
    ``expired``, ``not_yet_valid``, ``wrong_issuer``, ``wrong_audience``,
    ``wrong_subject`` or ``wrong_fingerprint``.
    """

    code = "token_rejected"

    def __init__(self, message: str, reason: str, **context: Any) -> None:
        super().__init__(message, reason=reason, **context)
        self.reason = reason


class InvalidLicenseFile(TenureError):
    """A license file that is not well-formed armor or a JWE that cannot be opened."""

    code = "invalid_license_file"
