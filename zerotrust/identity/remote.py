"""A JWKS URL: fetched with the standard library, cached, refreshed on an unknown ``kid``.

Key sets are parsed by :mod:`zerotrust.identity.keys`, exactly as a file is.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import cachetools

from zerotrust.identity.errors import IdentityConfigError, KeysUnavailableError
from zerotrust.identity.keys import (
    VerificationKey,
    _Keys,
    _loads,
    _parse_jwks,
    _report_skipped,
    _select,
    _Skipped,
)

__all__ = ["RemoteJWKS"]

_log = logging.getLogger("zerotrust.identity")
_LOOPBACK_NAMES = frozenset({"localhost"})


class RemoteJWKS:
    """A JWKS URL, fetched with the standard library, cached, refreshed on an unknown ``kid``.

    Fetches happen at most once per ``min_refresh_interval`` seconds whatever the cause
    (cache expiry, unknown kid, failure), so a flood of random kids cannot hammer the
    identity provider. When a fetch fails the last good keys stay in use; with none,
    verification fails with :class:`KeysUnavailableError`. Plain ``http`` is refused
    except to a loopback host; redirects are refused.
    """

    __slots__ = (
        "_cache",
        "_fetches",
        "_inflight",
        "_last_attempt",
        "_last_good",
        "_lock",
        "_opener",
        "_skipped",
        "_timer",
        "max_bytes",
        "min_refresh_interval",
        "timeout",
        "url",
    )

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        cache_ttl: float = 300.0,
        min_refresh_interval: float = 30.0,
        max_bytes: int = 1 << 20,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        loopback = _check_url(url)
        if not 0 < timeout <= 60:
            raise IdentityConfigError("RemoteJWKS timeout must be in (0, 60] seconds")
        if cache_ttl <= 0 or min_refresh_interval < 0 or max_bytes <= 0:
            raise IdentityConfigError("RemoteJWKS cache_ttl, interval and size must be positive")
        self.url = url
        self.timeout = timeout
        self.min_refresh_interval = min_refresh_interval
        self.max_bytes = max_bytes
        self._fetches = 0
        self._timer = timer
        self._cache: cachetools.TTLCache[str, tuple[VerificationKey, ...]] = cachetools.TTLCache(
            maxsize=1, ttl=cache_ttl, timer=timer
        )
        self._last_good: _Keys | None = None
        self._skipped: _Skipped = ()
        self._last_attempt: float | None = None
        self._lock = threading.Lock()
        self._inflight: threading.Event | None = None
        handlers: list[urllib.request.BaseHandler] = [_RefuseRedirects()]
        if loopback:
            handlers.append(urllib.request.ProxyHandler({}))  # never proxy a loopback address
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"RemoteJWKS({self.url!r})"

    @property
    def fetches(self) -> int:
        """How many fetches were attempted (for metrics and tests)."""
        return self._fetches

    def lookup(self, kid: str | None) -> tuple[VerificationKey, ...]:
        waited = False
        while True:
            with self._lock:
                cached, keys, found = self._known(kid)
                answered = keys is not None and (bool(found) or kid is None)
                if cached is not None and answered:
                    return found
                inflight, mine = self._inflight, False
                if inflight is None and self._may_fetch():
                    inflight = self._inflight = threading.Event()
                    self._last_attempt = self._timer()
                    self._fetches += 1
                    mine = True
            if mine:
                self._finish(inflight, self._download())
                with self._lock:
                    return self._answer(kid)
            if inflight is not None and not answered and not waited:
                # Another thread is fetching and only its result can answer: wait once.
                inflight.wait(self.timeout + 1)
                waited = True
                continue
            with self._lock:
                return self._answer(kid)

    def would_block(self, kid: str | None) -> bool:
        with self._lock:
            cached, keys, found = self._known(kid)
            answered = keys is not None and (bool(found) or kid is None)
            if cached is not None and answered:
                return False
            if self._inflight is None:
                return self._may_fetch()
            return not answered

    def refresh(self) -> bool:
        """Fetch now, ignoring the rate limit; return whether it succeeded."""
        with self._lock:
            self._last_attempt = self._timer()
            self._fetches += 1
        keys = self._download()
        self._finish(None, keys)
        return keys is not None

    def _known(self, kid: str | None) -> tuple[_Keys | None, _Keys | None, _Keys]:
        cached = self._cache.get("keys")
        keys = cached if cached is not None else self._last_good
        return cached, keys, (_select(keys, kid) if keys is not None else ())

    def _answer(self, kid: str | None) -> tuple[VerificationKey, ...]:
        if self._last_good is None:
            raise KeysUnavailableError("no verification keys could be loaded")
        return _select(self._last_good, kid)

    def _may_fetch(self) -> bool:
        last = self._last_attempt
        return last is None or self._timer() - last >= self.min_refresh_interval

    def _finish(self, inflight: threading.Event | None, keys: _Keys | None) -> None:
        with self._lock:
            if keys is not None:
                self._cache["keys"] = keys
                self._last_good = keys
            if inflight is not None:
                self._inflight = None
                inflight.set()

    def _download(self) -> _Keys | None:
        """Fetch and parse the JWKS without holding the lock, so known keys keep working."""
        try:
            request = urllib.request.Request(
                self.url, headers={"Accept": "application/json", "User-Agent": "zerotrust"}
            )
            with self._opener.open(request, timeout=self.timeout) as response:
                if response.status != 200:
                    raise ValueError(f"HTTP status {response.status}")
                body = response.read(self.max_bytes + 1)
            if len(body) > self.max_bytes:
                raise ValueError(f"JWKS larger than {self.max_bytes} bytes")
            keys, skipped = _parse_jwks(_loads(body))
        except Exception as exc:
            # Our own messages name what is wrong; a library's might quote the document.
            why = str(exc) if isinstance(exc, IdentityConfigError) else type(exc).__name__
            _log.warning(
                "JWKS fetch from %s failed (%s); keeping %s",
                self.url,
                why,
                "the last good keys" if self._last_good else "no keys",
            )
            return None
        if skipped != self._skipped:  # once per change, not at every refresh
            self._skipped = skipped
            _report_skipped(f"JWKS {self.url}", skipped)
        return keys


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("JWKS redirects are refused")


def _check_url(url: str) -> bool:
    """Refuse anything but https (or http to a loopback host); return whether it is loopback."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host in _LOOPBACK_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "https" and host:
        return loopback
    if parts.scheme == "http" and loopback:
        return True
    raise IdentityConfigError("a JWKS URL must be https (plain http only to a loopback host)")
