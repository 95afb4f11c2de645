"""A real Tenure server for end-to-end tests (the helpers: support/server.py,
support/api.py, support/remote.py).

``server`` (session scope) seeds a data dir with the demo workload through the CLI,
then runs ``python -m tenure serve`` as a subprocess on a free 127.0.0.1 port, waits
for ``/healthz`` and stops it (SIGTERM, then kill) at teardown. Tests talk to it over
real HTTP with httpx and the bootstrap owner key the server wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from support.api import Fetched, apply_example_catalog, fetch_checkpoints, ledger_key_of
from support.server import Server, seeded_server


@pytest.fixture
def closing() -> Iterator[Callable[[Any], Any]]:
    """Registers what a test opens (``closing(LicenseClient(...))`` returns it) and
    closes it after the test: an SDK client owns an HTTP client."""
    opened: list[Any] = []

    def register(thing: Any) -> Any:
        opened.append(thing)
        return thing

    yield register
    while opened:
        opened.pop().close()


@pytest.fixture(scope="module")
def own_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A seeded server of the requesting module's own (for modules that rotate keys
    or otherwise change what other modules see)."""
    with seeded_server(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1]) as running:
        yield running


@pytest.fixture(scope="module")
def catalog_owner(own_server: Server) -> Iterator[httpx.Client]:
    """The bootstrap owner of ``own_server``, with examples/catalog.yaml applied."""
    with own_server.client(own_server.owner_key()) as client:
        apply_example_catalog(client)
        yield client


@pytest.fixture(scope="module")
def pinned_ledger_key(catalog_owner: httpx.Client) -> str:
    """``own_server``'s ledger verifier key, as an application ships it."""
    return ledger_key_of(catalog_owner)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on a data dir seeded with the demo workload (500 events, seed 9)."""
    with seeded_server(tmp_path_factory, "seeded") as running:
        yield running


@pytest.fixture(scope="session")
def owner_key(server: Server) -> str:
    return server.owner_key()


@pytest.fixture(scope="session")
def api(server: Server, owner_key: str) -> Iterator[httpx.Client]:
    """An HTTP client authenticated with the bootstrap owner key."""
    with server.client(owner_key) as client:
        yield client


@pytest.fixture(scope="session")
def checkpoints_by_size(api: httpx.Client) -> dict[int, Fetched]:
    """``GET /v1/ledger/checkpoint?size=N`` for every N from 0 to the ledger size + 1."""
    return fetch_checkpoints(api)


@pytest.fixture(scope="session")
def stored_checkpoint_sizes(checkpoints_by_size: dict[int, Fetched]) -> list[int]:
    """The sizes at which the server holds a signed checkpoint, ascending."""
    return sorted(n for n, fetched in checkpoints_by_size.items() if fetched.status == 200)
