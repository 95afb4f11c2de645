"""The runtime a request's app was built with (``create_app`` keeps it in
``app.state.runtime``), typed for the routes."""

from __future__ import annotations

from fastapi import Request

from tenure.service.context import ServiceContext


def runtime_of(request: Request) -> ServiceContext:
    """The ``ServiceContext`` (settings, store, keys) of the app answering ``request``."""
    runtime: ServiceContext = request.app.state.runtime
    return runtime
