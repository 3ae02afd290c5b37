"""``AsyncAuthZENClient``: the event-loop client for any AuthZEN 1.0 PDP, on httpx."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import anyio
import httpx

from zerotrust.client import _convert as convert
from zerotrust.client import _requests as requests_
from zerotrust.client import _transport as transport_
from zerotrust.client._convert import PDPMetadata, SearchPage
from zerotrust.client._requests import SearchKind
from zerotrust.client._transport import DEFAULT_TIMEOUT, Timeout
from zerotrust.client.errors import PDPResponseError
from zerotrust.decision import Decision
from zerotrust.errors import RequestError
from zerotrust.request import AccessRequest

__all__ = ["AsyncAuthZENClient"]


class AsyncAuthZENClient:
    """As :class:`AuthZENClient`, with every call a coroutine; :meth:`evaluate_async`
    stands in for ``PolicyDecisionPoint.evaluate_async`` in the ASGI integrations.

    Use it from one event loop; close it with ``await client.aclose()`` or
    ``async with``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float | Timeout = DEFAULT_TIMEOUT,
        retries: int = 2,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | str | ssl.SSLContext = True,
        headers: Mapping[str, str] | None = None,
        discover: bool = True,
        insecure_http: bool = False,
        max_response_bytes: int = 1 << 20,
        trust_env: bool = False,
    ) -> None:
        self._settings = transport_.make_settings(
            base_url,
            token=token,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            headers=headers,
            discover=discover,
            insecure_http=insecure_http,
            max_response_bytes=max_response_bytes,
        )
        self._http = httpx.AsyncClient(
            timeout=self._settings.httpx_timeout(),
            transport=transport,
            verify=verify,
            trust_env=trust_env,
            follow_redirects=False,
        )
        self._metadata: PDPMetadata | None = None
        self._discovered = False

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    async def aclose(self) -> None:
        """Close the connection pool; the client cannot be used afterwards."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAuthZENClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- the PolicyDecisionPoint stand-in ----------------------------------------------

    async def evaluate_async(
        self, request: Mapping[str, Any] | AccessRequest, *, extra: Mapping[str, Any] | None = None
    ) -> Decision:
        """Decide one library request at the PDP, as ``PolicyDecisionPoint.evaluate_async``
        does locally. ``extra`` is local decision-log metadata: the remote PDP keeps
        its own log, so it is not sent."""
        return await self.evaluation(requests_.evaluation_body(request))

    # --- the AuthZEN API ---------------------------------------------------------------

    async def evaluation(self, body: Mapping[str, Any]) -> Decision:
        """One Access Evaluation (section 6): ``body`` is the AuthZEN request as sent."""
        answer = await self._post("access_evaluation_endpoint", body, "evaluation")
        return convert.decision_of(answer)

    async def evaluations(
        self,
        items: Sequence[Mapping[str, Any] | AccessRequest],
        *,
        subject: Mapping[str, Any] | None = None,
        action: Mapping[str, Any] | None = None,
        resource: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        semantic: str = "execute_all",
    ) -> list[Decision]:
        """Several evaluations in one call (section 7), in request order. Under
        ``deny_on_first_deny`` / ``permit_on_first_permit`` the list stops at the
        first deny / permit, as the PDP's answer does."""
        defaults = {"subject": subject, "action": action, "resource": resource, "context": context}
        body = requests_.batch_body(items, defaults, requests_.check_semantic(semantic))
        if not items:
            return []
        answer = await self._post("access_evaluations_endpoint", body, "evaluations")
        return convert.batch_decisions(answer, len(items), semantic)

    async def search_page(
        self,
        kind: SearchKind,
        body: Mapping[str, Any],
        *,
        limit: int | None = None,
        token: str | None = None,
    ) -> SearchPage:
        """One page of a subject, resource or action search (section 8)."""
        key = requests_.search_key(kind)
        answer = await self._post(
            key, requests_.search_body(body, limit=limit, token=token), f"search {kind}"
        )
        return convert.search_page_of(answer, kind, requests_.searched_type(kind, body))

    async def search(
        self, kind: SearchKind, body: Mapping[str, Any], *, limit: int | None = None
    ) -> AsyncIterator[Mapping[str, Any]]:
        """Every result of a search, page after page (``page.next_token``, section 8.3)."""
        requests_.search_key(kind)
        token: str | None = None
        seen: set[str] = set()
        while True:
            page = await self.search_page(kind, body, limit=limit, token=token)
            for result in page.results:
                yield result
            if not page.next_token:
                return
            if page.next_token in seen:
                raise PDPResponseError(f"search {kind}: page.next_token repeats an earlier one")
            seen.add(page.next_token)
            token = page.next_token

    async def metadata(self) -> PDPMetadata | None:
        """The PDP's metadata (section 9), fetched once; None when it publishes none."""
        if not self._discovered:
            base = self._settings.base_url
            status, headers, raw = await self._send(
                "GET", transport_.well_known_url(base), None, "metadata"
            )
            if transport_.is_metadata_absent(status):
                found = None
            else:
                found = transport_.check_metadata(
                    transport_.read_answer(status, headers, raw, "metadata"), base
                )
            self._metadata, self._discovered = found, True
        return self._metadata

    # --- HTTP --------------------------------------------------------------------------

    async def _post(self, key: str, body: Mapping[str, Any], what: str) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise RequestError("body", f"{what}: the request must be a mapping")
        url = await self._endpoint(key)
        status, headers, raw = await self._send(
            "POST", url, transport_.json_bytes(dict(body)), what
        )
        return transport_.read_answer(status, headers, raw, what)

    async def _endpoint(self, key: str) -> str:
        settings = self._settings
        if settings.discover:
            metadata = await self.metadata()
            if metadata is not None:
                return transport_.metadata_endpoint(metadata, key)
        return settings.base_url + transport_.DEFAULT_PATHS[key]

    async def _send(
        self, method: str, url: str, content: bytes | None, what: str
    ) -> tuple[int, httpx.Headers, bytes]:
        settings = self._settings
        headers = transport_.call_headers(settings, content is not None)
        attempt = 0
        while True:
            request = self._http.build_request(method, url, content=content, headers=headers)
            try:
                response = await self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                if transport_.is_retryable(exc) and attempt < settings.retries:
                    await anyio.sleep(transport_.backoff_delay(settings, attempt))
                    attempt += 1
                    continue
                raise transport_.failure(exc, what, url, attempt + 1) from exc
            try:
                limit = settings.max_response_bytes
                if transport_.too_large(response, limit):
                    raise PDPResponseError(f"{what}: the response is larger than {limit} bytes")
                raw = await transport_.read_capped_async(response.aiter_bytes(), limit, what)
            except httpx.HTTPError as exc:
                raise transport_.failure(exc, what, url, attempt + 1) from exc
            finally:
                await response.aclose()
            return response.status_code, response.headers, raw
