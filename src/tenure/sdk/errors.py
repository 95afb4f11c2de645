"""The SDK's failures: each a ``TenureError`` with a stable ``code``.

``problem`` is the server's RFC 9457 error code (the last segment of the problem
``type``) when the service answered, ``unreachable`` when it could not be reached,
``bad_response`` when its answer was not what the contract says, and
``token_rejected`` when what it sent did not verify (``reason`` then names the rule).
``status`` is the HTTP status, or ``None`` when no answer arrived.
"""

from __future__ import annotations

from typing import Any

from tenure.errors import TenureError


class SdkError(TenureError):
    """A call to the licensing service that did not succeed."""

    code = "sdk_error"

    def __init__(
        self, message: str, *, problem: str, status: int | None = None, **context: Any
    ) -> None:
        super().__init__(message, problem=problem, status=status, **context)
        self.problem = problem
        self.status = status

    @property
    def answered(self) -> bool:
        """Whether the service was reached (it answered, even if with a refusal)."""
        return self.status is not None


class ActivationFailed(SdkError):
    """``activate()`` did not leave a verified token in the cache."""

    code = "activation_failed"


class RefreshFailed(SdkError):
    """A token refresh failed; the current token is kept."""

    code = "refresh_failed"


class CheckFailed(SdkError):
    """An online check (``check_proven``) got no answer to verify."""

    code = "check_failed"


class SyncFailed(SdkError):
    """The revocation list could not be fetched or did not verify."""

    code = "sync_failed"
