"""Search candidates and page tokens.

A search is "decide every candidate, keep the permitted ones": the policies stay the
only place access is defined, so a search result evaluated again gives ``true``.
Page tokens are opaque, stateless and MACed with the app's key (from the configured
``paging_secret``, so every replica accepts them, or else its own): a token names
the next candidate to examine and is bound to the exact query that produced it, so a
changed query (the spec says it SHOULD be refused) or a forged token gives a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import attrs

from zerotrust.errors import RequestError
from zerotrust.server.entities import Entities
from zerotrust.server.protocol import SearchKind, SearchRequest

__all__ = ["Candidate", "PageTokens", "candidates"]

_MAC_BYTES = 16
_INDEX_BYTES = 4


@attrs.frozen
class Candidate:
    """A request the PDP decides, and the entity returned when it is permitted."""

    request: Mapping[str, Any] = attrs.field(hash=False)
    result: Mapping[str, Any] = attrs.field(hash=False)


def candidates(
    query: SearchRequest, entities: Entities, policy_actions: tuple[str, ...]
) -> list[Candidate]:
    """Every entity of the searched type, as a full request, in a stable order.

    A candidate's properties are its known properties overlaid with any the PEP
    sent for the searched entity (the PEP is trusted to describe the request).
    """
    base = {
        "subject": query.subject,
        "action": query.action,
        "resource": query.resource,
        "context": query.context,
        "device": query.context.get("device") or {},
    }
    out: list[Candidate] = []
    if query.kind is SearchKind.ACTION:
        names = list(entities.actions_for(query.resource["type"]))
        names += [n for n in policy_actions if n not in names]
        for name in names:
            request = dict(base, action={"name": name, "properties": {}})
            out.append(Candidate(request, {"name": name}))
        return out
    key = query.kind.value
    searched = query.subject if query.kind is SearchKind.SUBJECT else query.resource
    members = (
        entities.subjects_of(searched["type"])
        if query.kind is SearchKind.SUBJECT
        else entities.resources_of(searched["type"])
    )
    for entity in members:
        properties = {**entity.properties, **searched["properties"]}
        request = dict(
            base, **{key: {"type": entity.type, "id": entity.id, "properties": properties}}
        )
        out.append(Candidate(request, {"type": entity.type, "id": entity.id}))
    return out


class PageTokens:
    """Encodes and checks ``next_token`` values; the key lives as long as the app."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("page token key must be at least 16 bytes")
        self._key = key

    def encode(self, index: int, fingerprint: str) -> str:
        raw = index.to_bytes(_INDEX_BYTES, "big") + self._mac(index, fingerprint)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def decode(self, token: str, fingerprint: str) -> int:
        """The candidate index a token names; RequestError if forged or for another query."""
        try:
            padded = token + "=" * (-len(token) % 4)
            raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise _bad_token() from exc
        if len(raw) != _INDEX_BYTES + _MAC_BYTES:
            raise _bad_token()
        index = int.from_bytes(raw[:_INDEX_BYTES], "big")
        if not hmac.compare_digest(raw[_INDEX_BYTES:], self._mac(index, fingerprint)):
            raise _bad_token()
        return index

    def _mac(self, index: int, fingerprint: str) -> bytes:
        message = index.to_bytes(_INDEX_BYTES, "big") + fingerprint.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _bad_token() -> RequestError:
    return RequestError(
        "page.token",
        "unknown page token: it was not issued by this server for this exact query "
        "(entities, context and limit must not change between pages)",
    )
