"""The composition root: ``Runtime`` (``tenure.app.runtime``: settings → engine, key
stores, sidecar, writer, shipper, workers) and the HTTP app factory
(``tenure.app.factory``: ``create_app``, ``app_from_env``). Nothing else lives here;
nothing below imports it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def app_from_env() -> FastAPI:
    """The app with settings from ``TENURE_*`` only (``uvicorn --factory
    tenure.app:app_from_env``); see ``tenure.app.factory.app_from_env``."""
    # Imported here, when a server process starts: the CLI imports tenure.app.runtime
    # and must not pay for FastAPI and every route module.
    from tenure.app import factory

    return factory.app_from_env()
