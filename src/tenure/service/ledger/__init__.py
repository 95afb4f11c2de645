"""The ledger writer: one thread that appends events with group commit.

Callers ``submit`` commands from any thread (or ``await`` them from the API). The
writer takes everything queued, runs each command against the projection, builds
and validates its events, applies them, and commits the whole batch — events,
Merkle nodes, head, projection rows, idempotency records and any checkpoint — in
one ``BEGIN IMMEDIATE`` transaction: concurrent writers share one fsync. A command
that fails is answered with its error and leaves nothing in the batch.

The same transaction writes the audit entries (``tenure.service.audit``) of
everything the batch answered: each submission's entry (allowed, or denied with the
error's code), each operation's, and the decisions queued as ``AuditRequest``.
Nothing is answered that was not both done and audited (fail closed).

If the transaction fails, one request must not fail the others
(``tenure.service.batches``): the batch is retried in halves until only the request
at fault is left. It fails with ``UnstorableValue`` (audited as denied) when the
database refused one of its values, else with ``StorageUnavailable`` (nothing of it
written). When the database itself is unavailable the batch is not split: every
request fails with ``StorageUnavailable``, after one retry on a new connection if
the connection kept from an earlier batch had died (a database restart).

Checkpoints are signed every ``every_events`` events, after ``interval`` seconds
with unsigned events, on demand, and when the ledger closes. A store found behind
(or inconsistent with) the last signed checkpoint in the sidecar refuses to append
and to sign: either would fork the log.

The modules: ``requests`` (what callers submit and get back), ``writer`` (the
queue, batching and retries: ``Ledger``), ``kinds`` (the handler of each request
type), ``session`` (one account's append session in a batch), ``checkpoints``
(when and how to sign). The writer reaches the store through
``tenure.store.writing.WriterLink`` and the nouns of its transactions.
"""

from tenure.service.ledger.checkpoints import CheckpointPolicy, Signers
from tenure.service.ledger.requests import (
    AuditRequest,
    Operation,
    Outcome,
    Request,
    SignRequest,
    Submission,
)
from tenure.service.ledger.session import ROW_CACHE_LIMIT, PersonalSealing, append_drafts
from tenure.service.ledger.writer import GAP, LINGER, Ledger, append_audit

__all__ = [
    "GAP",
    "LINGER",
    "ROW_CACHE_LIMIT",
    "AuditRequest",
    "CheckpointPolicy",
    "Ledger",
    "Operation",
    "Outcome",
    "PersonalSealing",
    "Request",
    "SignRequest",
    "Signers",
    "Submission",
    "append_audit",
    "append_drafts",
]
