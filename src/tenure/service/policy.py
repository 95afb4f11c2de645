"""The role policy (SPEC "Governance and security"): one table.

Every route names the action it performs; ``POLICY`` says which roles may perform
it. Least privilege: a role not listed is refused with 403 (``Forbidden``); a
missing or invalid key is refused earlier with 401 (``Unauthenticated``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType

from tenure.errors import Forbidden
from tenure.service.apikeys import ROLES, Principal

ALL_ROLES = frozenset(ROLES)
READERS = frozenset({"owner", "admin", "issuer", "support", "auditor"})
ISSUERS = frozenset({"owner", "admin", "issuer"})
ADMINS = frozenset({"owner", "admin"})

POLICY: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "ledger.read": ALL_ROLES,
        "ledger.sign": ADMINS,
        "catalog.apply": ADMINS,
        "customer.read": READERS,
        "customer.write": ISSUERS,
        "customer.erase": ADMINS,
        "product.read": READERS,
        "license.read": READERS,
        "license.issue": ISSUERS,
        "license.change": ISSUERS,
        "license.suspend": ISSUERS | {"support"},
        "license.reinstate": ISSUERS | {"support"},
        "check": ALL_ROLES,
        "activation.manage": ISSUERS | {"support", "agent"},
        "token.mint": ISSUERS | {"support", "agent"},
        "keys.manage": ADMINS,
        "durability.read": ADMINS | {"restorer", "auditor"},
        "ledger.restore": frozenset({"restorer"}),
        "apikey.manage": ADMINS,
        "audit.read": frozenset({"owner", "auditor"}),
        "account.manage": frozenset({"owner"}),
        "approval.read": READERS | {"restorer"},
        "approval.decide": ISSUERS | {"restorer"},
        "deployment.report": frozenset({"agent"}) | ADMINS,
        "deployment.read": READERS,
        "drift.read": READERS,
        "drift.reconcile": ADMINS,
        "notice.read": READERS,
        "alert.read": READERS | {"restorer"},
        "webhook.read": ADMINS | {"auditor"},
        "webhook.manage": ADMINS,
        "ops.read": READERS | {"restorer"},
    }
)
"""Action → the roles allowed to perform it. The restorer reads the ledger and
durability status and restores the live store from a site (nobody else may); the
agent reads the ledger, checks, activates, mints tokens and posts what its
installation enforces (deployment reports). Deciding an approval also needs the role
of the action it approves, or the owner role (``tenure.api.approval_routes``)."""

MANAGEABLE_ROLES: Mapping[str, frozenset[str]] = MappingProxyType(
    {"owner": ALL_ROLES, "admin": ALL_ROLES - {"owner"}}
)
"""Of ``apikey.manage`` holders: the roles of the keys each may create or revoke."""


def allowed(role: str, action: str) -> bool:
    """May ``role`` perform ``action``? Unknown actions are a programming error."""
    return role in POLICY[action]


def authorize(caller: Principal, action: str) -> None:
    """Raise ``Forbidden`` unless the caller's role may perform ``action``."""
    if not allowed(caller.role, action):
        roles = ", ".join(sorted(POLICY[action]))
        raise Forbidden(f"{action} needs one of the roles {roles}", action=action)


def manageable_roles(caller: Principal) -> Collection[str]:
    """The roles of the API keys the caller may create or revoke."""
    return MANAGEABLE_ROLES.get(caller.role, frozenset())


def require_may_manage(caller: Principal, role: str) -> None:
    """Raise ``Forbidden`` unless the caller may create or revoke a key of ``role``."""
    if role not in manageable_roles(caller):
        raise Forbidden(f"the {caller.role} role may not manage {role} keys", field="role")
