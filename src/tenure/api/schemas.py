"""What ``/openapi.json`` says that no service answers: the problem body, the health
check's own answer, and ``answers``, which names a service's answer type in a route's
OpenAPI ``responses``.

Every other answer is described once, by the code that builds it: a ``TypedDict``
next to the service (``tenure.domain.answers`` says how) or a pydantic ``View``
(``tenure.service.views``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from tenure.service.views import ApprovalPending


def _no_default(schema: JsonDict) -> None:
    """For ``X | SkipJsonSchema[None] = None``: a member left out (never null) when it
    does not apply, so the schema says ``X``, optional, without ``default: null``."""
    schema.pop("default", None)


class Doc(BaseModel):
    """A closed response object."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- problems


class Problem(Doc):
    """An RFC 9457 problem (``application/problem+json``); see ``tenure.api.problems``."""

    type: Annotated[str, Field(pattern=r"^https://tenure\.dev/problems/[a-z_]+$")] = Field(
        description="https://tenure.dev/problems/ followed by the stable error code"
    )
    title: str = Field(description="the error code in words")
    status: Annotated[int, Field(ge=400, le=599)]
    detail: str
    field: str | SkipJsonSchema[None] = Field(
        default=None,
        json_schema_extra=_no_default,
        description="the input at fault: a body path (checks[3].license), query parameter "
        "or header",
    )


# ---------------------------------------------------------------- operations


class Health(Doc):
    status: Literal["ok"]


# ---------------------------------------------------------------- answers


def answers(model: Any, description: str, status: int = 200) -> dict[int | str, Any]:
    """OpenAPI ``responses`` for a successful answer whose body ``model`` (a service's
    ``TypedDict`` answer or a ``View``) describes. Documentation only: the route keeps
    ``response_model=None`` and answers the dict it gets, unvalidated and unconverted."""
    return {status: {"model": model, "description": description}}


NEEDS_APPROVAL = answers(
    ApprovalPending, "Needs a second principal's approval: the request it made", 202
)
"""The 202 of a route the two-person rule gates."""
