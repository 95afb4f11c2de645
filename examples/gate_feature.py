"""Gate a feature with the Tenure SDK: online once to activate, offline afterwards.

    python examples/gate_feature.py URL LICENSE_KEY SERIAL
"""

import sys
import uuid
from pathlib import Path

from tenure.sdk import LicenseClient

url, license_key, serial = sys.argv[1:4]
device = str(uuid.getnode())  # any stable id of this machine
client = LicenseClient(url, license_key, serial, device, Path.home() / ".cache/myapp")
if client.check("feature:export-pdf").reason == "not_activated":
    client.activate()  # once; later starts use the cached, verified token
decision = client.check("feature:export-pdf")
print("export-pdf:", "allowed" if decision.allowed else f"denied ({decision.reason})")
client.close()
