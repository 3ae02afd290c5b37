"""A Python client for any AuthZEN 1.0 policy decision point (``pip install 'zerotrust[client]'``).

:class:`AuthZENClient` (blocking) and :class:`AsyncAuthZENClient` evaluate, batch and
search against a remote PDP such as ``zerotrust serve``, and can stand in for a local
:class:`~zerotrust.PolicyDecisionPoint` in the web integrations: a PDP that cannot be
reached, or that answers something invalid, raises; it never allows. See docs/client.md.
"""

from __future__ import annotations

from zerotrust.client._async import AsyncAuthZENClient
from zerotrust.client._convert import PDPMetadata, SearchPage
from zerotrust.client._requests import SearchKind
from zerotrust.client._sync import AuthZENClient
from zerotrust.client._transport import Timeout
from zerotrust.client.errors import (
    ClientConfigError,
    PDPError,
    PDPRequestError,
    PDPResponseError,
    PDPUnavailableError,
)

__all__ = [
    "AsyncAuthZENClient",
    "AuthZENClient",
    "ClientConfigError",
    "PDPError",
    "PDPMetadata",
    "PDPRequestError",
    "PDPResponseError",
    "PDPUnavailableError",
    "SearchKind",
    "SearchPage",
    "Timeout",
]
