"""WSGI plumbing shared by the middleware and the Flask and Django integrations.

Package-internal: the request read from a PEP 3333 environ (or Django's ``META``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zerotrust.web.http import HttpRequest, routable_method

__all__ = ["http_request"]


def http_request(environ: Mapping[str, Any]) -> tuple[HttpRequest, bool]:
    """The request, and whether a route may match it: frameworks read it all alike.

    A path that is not UTF-8 is not: Werkzeug reads its bad bytes as U+FFFD, Django
    re-escapes them, so no one id is what every app would serve. Neither is a method
    that is not upper case (:func:`~zerotrust.web.http.routable_method`).
    """
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.replace("_", "-").lower()] = value
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    routable = routable_method(method)
    # PEP 3333 carries the raw bytes as latin-1; routers match the UTF-8 text.
    if not path.isascii() and max(map(ord, path)) < 256:
        raw = path.encode("latin-1")
        try:
            path = raw.decode("utf-8")
        except UnicodeDecodeError:
            path, routable = raw.decode("utf-8", "replace"), False
    # Werkzeug routes "//customers/1" as "/customers/1": decide on what the app serves
    # (Django, which does not, answers 404 there, so deciding on more is safe).
    path = "/" + path.lstrip("/")
    http = HttpRequest(
        method=method,
        path=path,
        headers=headers,
        peer=environ.get("REMOTE_ADDR") or None,
        query_string=environ.get("QUERY_STRING", ""),
    )
    return http, routable
