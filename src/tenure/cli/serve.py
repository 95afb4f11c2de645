"""``tenure serve``: the web stack, imported only when the service runs."""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn

from tenure.api.app import create_app
from tenure.cli.common import out, settings
from tenure.service.apikeys import BOOTSTRAP_FILE, ensure_bootstrap_owner
from tenure.service.runtime import Runtime


def run_server(
    data_dir: Path | None, db: str | None, host: str | None, port: int | None, workers: int = 1
) -> None:
    """Open the store, print the URL (and the bootstrap owner key on first start), serve.

    With ``workers`` > 1, that many processes serve the same store (each with its own
    ledger writer; SQLite's write lock orders their commits); they read their settings
    from ``TENURE_*``, so the options given here are passed on that way.
    """
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
    if workers == 1:
        uvicorn.run(create_app(s, runtime), host=s.host, port=s.port, log_level="warning")
        return
    runtime.close()
    os.environ["TENURE_DATA_DIR"] = str(s.data_dir)
    if s.database_url:
        os.environ["TENURE_DATABASE_URL"] = s.database_url
    uvicorn.run(
        "tenure.api.app:app_from_env",
        factory=True,
        host=s.host,
        port=s.port,
        workers=workers,
        log_level="warning",
    )
