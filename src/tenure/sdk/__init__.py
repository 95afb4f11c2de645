"""The application-side client of Tenure (docs/offline.md, "The Python SDK").

Imports only the standard library, ``cryptography``, ``httpx``, ``orjson`` and, from
Tenure, ``tenure.crypto`` (JWS, files, the signed key set), ``tenure.ledger`` (signed
notes, the state map), ``tenure.domain`` (the pure decision) and ``tenure.errors``:
never the server or its dependencies.

    client = LicenseClient(url, license_key, serial, fingerprint, cache_dir,
                           ledger_key=LEDGER_KEY)   # the trust anchor: ship it
    client.activate()                       # once; later starts use the cache
    if client.check("feature:export-pdf").allowed:
        ...
"""

from __future__ import annotations

from tenure.sdk.client import LicenseClient
from tenure.sdk.decisions import Decision, Reason
from tenure.sdk.errors import ActivationFailed, CheckFailed, RefreshFailed, SdkError, SyncFailed
from tenure.sdk.proofs import ProofRejected, ProvenCheck, verify_check, verify_rows
from tenure.sdk.reporting import DeploymentReporting
from tenure.sdk.tokens import REVOCATIONS_TYP, TOKEN_TYP, fingerprint_hash

__all__ = [
    "REVOCATIONS_TYP",
    "TOKEN_TYP",
    "ActivationFailed",
    "CheckFailed",
    "Decision",
    "DeploymentReporting",
    "LicenseClient",
    "ProofRejected",
    "ProvenCheck",
    "Reason",
    "RefreshFailed",
    "SdkError",
    "SyncFailed",
    "fingerprint_hash",
    "verify_check",
    "verify_rows",
]
