"""What the AuthZEN client raises: every failure is typed, and none of them is an allow.

These live with the client (as ``ServerConfigError`` lives with the server) because only
the client raises them; each is a :class:`~zerotrust.errors.ZeroTrustError` and also the
builtin that fits, so a caller's ``except ConnectionError`` or ``except ValueError`` works.
"""

from __future__ import annotations

from zerotrust.errors import ZeroTrustError

__all__ = [
    "ClientConfigError",
    "PDPError",
    "PDPRequestError",
    "PDPResponseError",
    "PDPUnavailableError",
]


class ClientConfigError(ZeroTrustError, ValueError):
    """An :class:`~zerotrust.client.AuthZENClient` option is invalid (a URL that is not
    ``http(s)``, plain HTTP to a remote host, a token with characters a header cannot
    carry, a timeout that is not a positive number). Raised by the constructor."""


class PDPError(ZeroTrustError):
    """Root of the errors a call to a remote PDP raises; no call returns a decision then."""


class PDPUnavailableError(PDPError, ConnectionError):
    """The PDP could not be asked or did not answer: connection refused or reset (after
    the configured retries), a timeout, or a 5xx / 408 / 429 status. ``status`` is the
    HTTP status when there was one, else None."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class PDPResponseError(PDPError, ValueError):
    """The PDP answered, but not with a valid AuthZEN 1.0 response (not JSON, the wrong
    shape, a ``decision`` that is not a boolean, a zerotrust context that contradicts
    the decision). The message names what was wrong."""


class PDPRequestError(PDPError, ValueError):
    """The PDP refused the request (a 4xx: 400 malformed, 401/403 the PEP's credentials),
    or its metadata does not offer the API called (``status`` None then)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)
