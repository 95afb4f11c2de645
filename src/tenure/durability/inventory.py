"""What a restore brings back, for every table of the schema, and how it is proven.

``RESTORED`` names each table a restore writes and where its rows come from;
``NOT_RESTORED`` each table it leaves empty on purpose, and why. Every table of
the schema head is in exactly one of them (``tests/unit/test_restore_inventory.py``
fails otherwise), and docs/durability.md ("What a restore brings back") shows the
same list. ``tenure restore`` ends with this list and the rows it wrote per table.
"""

from __future__ import annotations

from tenure.domain.state import TABLES

_LEDGER = "the site's segments, proven by its signed checkpoint (tree root)"
_REPLAYED = (
    "replayed from the ledger onto the newest proven snapshot (rows proven by the "
    "snapshot's signed state root)"
)
_DERIVED = "rebuilt from the restored projection rows"
_KEYS = "keys.json at the site, signed by the ledger key (else the snapshot's)"
_SERVICE = "service.json at the site, signed by the ledger key"
_AUDIT = "shipped as the audit chain (durability/audit_shipping.py)"

RESTORED: dict[str, str] = {
    "ledger_heads": _LEDGER,
    "ledger_events": _LEDGER,
    "ledger_nodes": _LEDGER + "; recomputed from the events",
    "ledger_checkpoints": "the site's latest signed checkpoint (older ones are not kept)",
    "ledger_keys": "the ledger verifier keys the restore was given (key store or --key)",
    "state_leaves": _DERIVED,
    "state_buckets": _DERIVED,
    **{f"proj_{name}": _REPLAYED for name in TABLES},
    "proj_approvals": _REPLAYED + "; approvals are events, so pending ones come back",
    "idempotency_keys": (
        "shipped with each segment (idempotency/<first>-<end>.json), signed by the "
        "ledger key, each record checked against its event; plus the snapshot's"
    ),
    "api_keys": _KEYS,
    "signing_keys": _KEYS + "; public keys only, the private keys stay in the key store",
    "accounts": _KEYS,
    "webhooks": _SERVICE + "; secrets sealed as stored (they open with the same master key)",
    "webhook_cursors": _SERVICE + "; events past it are queued again (at least once)",
    "deployments": _SERVICE,
    "activation_sightings": _SERVICE,
    "drift_findings": _SERVICE,
    "drift_passes": _SERVICE,
    "data_keys": (
        "datakeys.json at the site, signed by the ledger key; wrapped under the master "
        "key as stored, less the keys of customers the restored ledger erased (deleted "
        "in the restore's transaction)"
    ),
    "audit_log": _AUDIT,
    "audit_heads": _AUDIT,
}

NOT_RESTORED: dict[str, str] = {
    "webhook_deliveries": (
        "the delivery queue and its attempts change with every try; a delivery still "
        "queued when the database was lost is not sent again (its event is in the "
        "ledger: GET /v1/ledger/events)"
    ),
    "notices": (
        "re-derived: the notice job records again the notices of licenses still in "
        "their window (their webhook events may be sent again)"
    ),
    "alerts": "re-derived: the alert job raises again an anomaly that persists",
    "ops_minutes": "per-minute operational counters (metrics history), not state",
    "drills": "results of drills of the lost database; each is also in the audit log",
    "read_generation": (
        "each account's change counter of the lost database (when servers read rows "
        "again); the restored database's triggers count its own"
    ),
}

WRITTEN_BY_RESTORE = tuple(RESTORED)
"""The tables whose rows ``tenure restore`` counts in its closing table."""
