"""Gate a feature with the Tenure SDK: online once to activate, offline afterwards.

    .venv/bin/python examples/gate_feature.py URL LICENSE_KEY SERIAL [LEDGER_KEY]

Run it with the Python of the virtualenv Tenure is installed in (activated or not).
LEDGER_KEY (or the environment variable TENURE_LEDGER_KEY) is the account's ledger
verifier key, as `tenure ledger key` and `GET /v1/ledger/key` print it. Ship it with
the application: it is the SDK's trust anchor, so nothing written into the cache can
make the application trust another signing key.

Prints ``export-pdf: allowed`` or ``export-pdf: denied (<reason>)`` and exits 0; if
the device cannot be activated (no seat left, license suspended, service
unreachable …) prints one line on stderr and exits 1; wrong arguments exit 2.
"""

import os
import sys
import uuid
from pathlib import Path

from tenure.sdk import ActivationFailed, LicenseClient

USAGE = "usage: gate_feature.py URL LICENSE_KEY SERIAL [LEDGER_KEY]  (or TENURE_LEDGER_KEY)"

if len(sys.argv) not in (4, 5):
    print(USAGE, file=sys.stderr)
    sys.exit(2)
url, license_key, serial = sys.argv[1:4]
ledger_key = sys.argv[4] if len(sys.argv) > 4 else os.environ.get("TENURE_LEDGER_KEY")
if not ledger_key:
    print(USAGE, file=sys.stderr)
    sys.exit(2)

device = str(uuid.getnode())  # any stable id of this machine
cache = Path.home() / ".cache/myapp"
with LicenseClient(url, license_key, serial, device, cache, ledger_key=ledger_key) as client:
    if client.check("feature:export-pdf").reason in ("not_activated", "untrusted_key"):
        try:
            client.activate()  # once; later starts use the cached, verified token
        except ActivationFailed as exc:  # no seat left, license suspended, offline …
            sys.exit(f"cannot activate this device: {exc.problem}: {exc}")
    decision = client.check("feature:export-pdf")
print("export-pdf:", "allowed" if decision.allowed else f"denied ({decision.reason})")
