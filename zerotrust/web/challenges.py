"""HTTP answers that clients and identity providers already understand.

* RFC 9470 step-up: ``401`` with ``WWW-Authenticate: Bearer
  error="insufficient_user_authentication", error_description="...", acr_values="...",
  max_age="..."``; the client asks its authorization server for exactly that.
* RFC 6750 bearer errors: ``invalid_token`` (and no error code when the token is
  missing, as RFC 6750 section 3.1 asks).
* RFC 9457 ``application/problem+json`` bodies carrying the decision id, so an
  operator can find the decision-log entry without the client learning the rules.

:func:`parse_challenges` reads such headers back (RFC 9110 section 11.6.1 grammar).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from zerotrust.decision import StepUp

__all__ = [
    "PROBLEM_JSON",
    "Challenge",
    "bearer_challenge",
    "parse_challenges",
    "problem_body",
    "step_up_challenge",
]

PROBLEM_JSON = "application/problem+json"
STEP_UP_ERROR = "insufficient_user_authentication"
_STATUS_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    500: "Internal Server Error",
}
# RFC 6750 section 3: error_description is %x20-21 / %x23-5B / %x5D-7E (no " or \),
# and scope-like values (acr_values) are NQCHAR = %x21 / %x23-5B / %x5D-7E.
_NOT_DESCRIPTION = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
_NOT_NQCHAR = re.compile(r"[^\x21\x23-\x5b\x5d-\x7e]")


def _description(text: str) -> str:
    return _NOT_DESCRIPTION.sub(" ", text).strip()


def step_up_challenge(
    step_up: StepUp, *, description: str | None = None, realm: str | None = None
) -> str:
    """The RFC 9470 ``WWW-Authenticate`` value for a step_up decision.

    ``acr_values`` is space-separated in order of preference; ``max_age`` is sent as a
    quoted non-negative integer, as the RFC's examples do.
    """
    acr = [v for v in (_NOT_NQCHAR.sub("", a) for a in step_up.acr_values) if v]
    if description is None:
        description = (
            "A different authentication level is required"
            if acr
            else "More recent authentication is required"
        )
    params: list[tuple[str, str]] = []
    if realm is not None:
        params.append(("realm", _description(realm)))
    params.append(("error", STEP_UP_ERROR))
    params.append(("error_description", _description(description)))
    if acr:
        params.append(("acr_values", " ".join(acr)))
    if step_up.max_age is not None:
        params.append(("max_age", str(max(0, int(step_up.max_age)))))
    return _render(params)


def bearer_challenge(
    error: str | None = "invalid_token",
    *,
    description: str | None = None,
    realm: str | None = None,
) -> str:
    """An RFC 6750 ``Bearer`` challenge; ``error=None`` for a request without a token."""
    params: list[tuple[str, str]] = []
    if realm is not None:
        params.append(("realm", _description(realm)))
    if error is not None:
        params.append(("error", _NOT_NQCHAR.sub("", error)))
        if description:
            params.append(("error_description", _description(description)))
    return _render(params)


def _render(params: list[tuple[str, str]]) -> str:
    if not params:
        return "Bearer"
    return "Bearer " + ", ".join(f'{name}="{value}"' for name, value in params)


def problem_body(
    status: int,
    *,
    detail: str,
    code: str,
    decision_id: str | None = None,
    type_base: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """An RFC 9457 problem document.

    Without ``type_base`` the type is ``about:blank`` and the title the status phrase;
    ``code`` (e.g. ``access_denied``) is an extension member for machines either way.
    """
    doc: dict[str, Any] = {
        "type": f"{type_base}{code}" if type_base else "about:blank",
        "title": _STATUS_TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if decision_id is not None:
        doc["decision_id"] = decision_id
    if extra:
        doc.update({k: v for k, v in extra.items() if k not in doc})
    return json.dumps(doc, separators=(",", ":")).encode()


@attrs.frozen
class Challenge:
    """One parsed challenge: its scheme (lower-cased) and its auth-params."""

    scheme: str
    params: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    token68: str | None = None


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*({_TOKEN}|{_QUOTED})\s*")
_SCHEME = re.compile(rf"\s*({_TOKEN})(?=[\s,]|$)\s*")
_TOKEN68 = re.compile(r"\s*([A-Za-z0-9\-._~+/]+=*)\s*(?:,|$)")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into its challenges.

    Raises ``ValueError`` if the value is not well-formed; parameter names are
    lower-cased and quoted values unescaped.
    """
    out: list[Challenge] = []
    pos, end = 0, len(header)
    while pos < end:
        if header[pos] in " \t,":
            pos += 1
            continue
        m = _SCHEME.match(header, pos)
        if m is None:
            raise ValueError(f"malformed challenge at offset {pos}")
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        token68 = None
        t = _TOKEN68.match(header, pos)
        if t is not None and not _PARAM.match(header, pos):
            token68, pos = t.group(1), t.end()
        else:
            while pos < end:
                p = _PARAM.match(header, pos)
                if p is None:
                    break
                name, value = p.group(1).lower(), p.group(2)
                if value.startswith('"'):
                    value = re.sub(r"\\(.)", r"\1", value[1:-1])
                if name in params:
                    raise ValueError(f"duplicate auth-param {name!r}")
                params[name] = value
                pos = p.end()
                if pos < end and header[pos] == ",":
                    pos += 1
        out.append(Challenge(scheme=scheme, params=params, token68=token68))
    return out
