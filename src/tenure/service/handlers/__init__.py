"""The use cases, one function per operation: what the API routes, the
console and the local CLI call. Each owns the approval gating, the reads its
decision needs, the audit entry of the caller's request and the submission to the
ledger writer, which makes the change and audits it in one transaction. Routes only
parse input, call one of these and return its answer (a view of
``tenure.service.views``, or a ``TypedDict`` of the licensing services).

One module per area: ``accounts``, ``apikeys``, ``approvals`` (governance),
``licensing``, ``activations``, ``catalog``, ``tokens``. Changes that are not
ledger events go to the writer as typed operations (``AuditedChange`` subclasses:
``CreateAccount``, ``CreateApiKey``, ``RevokeApiKey``, ``RotateSigningKey``).
"""

from __future__ import annotations

from collections.abc import Callable

from tenure.service.ledger import Outcome
from tenure.service.ledger import Request as WriterRequest

Submit = Callable[[WriterRequest], Outcome]
"""Runs a request in the ledger writer's transaction, which audits it (the API's
``execute_audited``, or ``Ledger.execute``)."""
