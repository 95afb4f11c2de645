"""Gate a feature with the Tenure SDK: online once to activate, offline afterwards.

    python examples/gate_feature.py URL LICENSE_KEY SERIAL [LEDGER_KEY]

LEDGER_KEY (or the environment variable TENURE_LEDGER_KEY) is the account's ledger
verifier key, as `tenure ledger key` and `GET /v1/ledger/key` print it. Ship it with
the application: it is the SDK's trust anchor, so nothing written into the cache can
make the application trust another signing key.
"""

import os
import sys
import uuid
from pathlib import Path

from tenure.sdk import LicenseClient

url, license_key, serial = sys.argv[1:4]
ledger_key = sys.argv[4] if len(sys.argv) > 4 else os.environ["TENURE_LEDGER_KEY"]
device = str(uuid.getnode())  # any stable id of this machine
cache = Path.home() / ".cache/myapp"
client = LicenseClient(url, license_key, serial, device, cache, ledger_key=ledger_key)
if client.check("feature:export-pdf").reason in ("not_activated", "untrusted_key"):
    client.activate()  # once; later starts use the cached, verified token
decision = client.check("feature:export-pdf")
print("export-pdf:", "allowed" if decision.allowed else f"denied ({decision.reason})")
client.close()
