"""``tenure serve``."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from tenure.api.app import create_app
from tenure.cli.common import DataDir, DbUrl, out, settings
from tenure.service.apikeys import BOOTSTRAP_FILE, ensure_bootstrap_owner
from tenure.service.runtime import Runtime


def serve(
    data_dir: DataDir = None,
    db: DbUrl = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on [default 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default 8080].")] = None,
) -> None:
    """Run the service; on first start, print the bootstrap owner API key once.

    The key is also written to <data-dir>/bootstrap-owner.key (mode 0600).
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
    uvicorn.run(create_app(s, runtime), host=s.host, port=s.port, log_level="warning")
