"""Deployment reports from the SDK (docs/drift.md): after each refresh, a client
configured with a deployment id and an agent key tells the service what this
installation enforces — its device, the entitlements its token grants, and the
token it holds. A report is best effort: its failure is remembered, never raised,
so it cannot break a refresh or a decision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from tenure import __version__
from tenure.sdk.decisions import Grant

_ENTITLEMENT = re.compile(r"^(feature|module|quota):[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class DeploymentReporting:
    """Where and as whom reports go: ``POST /v1/deployments/{deployment_id}/reports``
    with ``Authorization: Bearer <report_key>`` (an ``agent`` API key)."""

    deployment_id: str
    report_key: str
    product: str
    product_version: str
    sdk_version: str = __version__


def report_body(reporting: DeploymentReporting, grant: Grant, device_hash: str) -> dict[str, Any]:
    """The report of one device holding ``grant``."""
    in_use = sorted(k for k, v in grant.entitlements.items() if v and _ENTITLEMENT.match(k))
    return {
        "product": reporting.product,
        "product_version": reporting.product_version,
        "sdk_version": reporting.sdk_version,
        "activations": [
            {
                "license": grant.serial,
                "activation": grant.activation,
                "fingerprint_hash": device_hash,
                "entitlements": in_use,
                "tokens": [{"jti": grant.jti, "exp": grant.expires_at}],
            }
        ],
    }


def send_report(
    http: httpx.Client, url: str, reporting: DeploymentReporting, body: dict[str, Any]
) -> str | None:
    """Post ``body``; None when the service stored it, else why not (one line)."""
    path = f"/v1/deployments/{quote(reporting.deployment_id, safe='')}/reports"
    headers = {"Authorization": f"Bearer {reporting.report_key}"}
    try:
        response = http.post(url + path, json=body, headers=headers)
    except httpx.HTTPError as error:
        return f"{path}: {error!r}"
    if response.status_code >= 300:
        return f"{path}: HTTP {response.status_code}"
    return None
