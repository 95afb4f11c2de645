"""``tenure serve``: the web stack, imported only when the service runs."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from tenure.api.app import create_app
from tenure.cli.common import out, settings
from tenure.service.apikeys import BOOTSTRAP_FILE, ensure_bootstrap_owner
from tenure.service.runtime import Runtime


def run_server(data_dir: Path | None, db: str | None, host: str | None, port: int | None) -> None:
    """Open the store, print the URL (and the bootstrap owner key on first start), serve."""
    s = settings(data_dir, db, host=host, port=port)
    runtime = Runtime.open(s)
    key = ensure_bootstrap_owner(runtime.engine, s.data_dir, s.default_account)
    url = f"http://{s.host}:{s.port}"
    out.print(f"Tenure listening on {url}  (database {s.database()})", highlight=False)
    if key:
        out.print(f"Bootstrap owner API key (shown once): {key}", highlight=False)
        out.print(f"  also written to {s.data_dir / BOOTSTRAP_FILE} (mode 0600)", highlight=False)
    else:
        out.print(f"Owner key: see {s.data_dir / BOOTSTRAP_FILE}", highlight=False)
    out.print(
        f"Try: curl -H 'Authorization: Bearer <key>' {url}/v1/ledger/checkpoint", highlight=False
    )
    uvicorn.run(create_app(s, runtime), host=s.host, port=s.port, log_level="warning")
