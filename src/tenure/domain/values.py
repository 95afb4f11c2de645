"""The value types events and answers share: codes, serials, ids, times, entitlement
keys and values, each a ``str`` (or value) annotated with what makes it valid, so one
pattern serves event schemas, request bodies and the OpenAPI answers."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from tenure.domain.decisions import ENTITLEMENT_KEY_PATTERN
from tenure.domain.timefmt import is_time

Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Serial = Annotated[str, StringConstraints(pattern=r"^TNR-[A-Z2-7]{5}(-[A-Z2-7]{5}){3}$")]
CustomerId = Annotated[str, StringConstraints(pattern=r"^cus_[a-z0-9]{26}$")]


def _real_time(text: str) -> str:
    """The pattern alone admits Unicode digits and impossible dates such as Feb 31."""
    if not is_time(text):
        raise ValueError("must be a valid RFC 3339 UTC time with six fraction digits")
    return text


Time = Annotated[
    str,
    StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"),
    AfterValidator(_real_time),
]
EntitlementKey = Annotated[str, StringConstraints(pattern=ENTITLEMENT_KEY_PATTERN)]
EntitlementValue = bool | int
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

EventId = Annotated[str, StringConstraints(pattern=r"^evt_[0-9a-f]{32}$")]

ActivationId = Annotated[str, StringConstraints(pattern=r"^act_[a-z2-7]{26}$")]
TokenId = Annotated[str, StringConstraints(pattern=r"^tok_[a-z2-7]{26}$")]

ApprovalId = Annotated[str, StringConstraints(pattern=r"^apr_[a-z2-7]{26}$")]
PrincipalId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
