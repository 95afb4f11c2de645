"""What the JSON answers of the services are made of.

An answer the services build as a dict is described once, as a ``TypedDict`` next to
the code that builds it: mypy checks the code against it, and the route names it in
its OpenAPI ``responses`` (``tenure.api.schemas.answers``), so ``/openapi.json`` is
generated from it. The services keep returning plain dicts: nothing validates or
re-serializes an answer at runtime (``POST /v1/check`` is a hot path). An answer
built from a pydantic ``View`` (``tenure.service.views``) is described by the view.

A ``TypedDict`` answer is closed (``additionalProperties: false``, ``@closed``); its
key order is the JSON's.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, with_config

Base64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$")]
NonNegative = Annotated[int, Field(ge=0)]

closed = with_config(ConfigDict(extra="forbid"))
"""Marks a ``TypedDict`` answer closed: its JSON schema allows no other member."""
