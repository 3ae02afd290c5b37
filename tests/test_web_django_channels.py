"""zerotrust.web.channels through Channels' own WebsocketCommunicator: the handshake is
decided before the consumer can accept, with real signed tokens and records from SQLite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from web_helpers import (
    RecordingLog,
    bearer,
    django_setup,
    rogue_key,
    shipped_pdp,
    token,
    web_config,
)

from zerotrust import Effect
from zerotrust.web import parse_challenges

pytest.importorskip("channels")

WATCH_POLICY = """
policy: live-view
target: {resources: [customer_record], actions: [watch]}
rules:
  - id: deny-other-department
    effect: deny
    when: "subject.properties.department != resource.properties.owner_dept"
  - id: step-up-confidential
    effect: step_up
    when: >-
      has(resource.properties.sensitivity) && resource.properties.sensitivity >= 3
      && !(has(subject.properties.amr) && 'mfa' in subject.properties.amr)
    step_up: {acr_values: ["urn:example:loa:2"]}
  - id: allow-own-department
    effect: allow
    when: "subject.properties.department == resource.properties.owner_dept"
"""
DENIAL = {"websocket.http.response": {}}


@pytest.fixture
def log() -> Iterator[RecordingLog]:
    django_setup()
    from django_site import consumers

    consumers.CALLS.clear()
    yield RecordingLog()
    consumers.CALLS.clear()


def calls() -> list[str]:
    from django_site import consumers

    return consumers.CALLS


@pytest.fixture
def app(log: RecordingLog) -> Iterator[Any]:
    from django.test.utils import override_settings
    from django_site import consumers

    zerotrust = {"PDP": shipped_pdp(log, extra=WATCH_POLICY), "CONFIG": web_config()}
    with override_settings(ZEROTRUST=zerotrust):
        yield consumers.application()


def connect(app: Any, path: str, headers: dict[str, str], extensions: Any = None) -> Any:
    """The first thing the app sends after the client's connect, and what follows."""
    from channels.testing import WebsocketCommunicator

    async def run() -> list[dict[str, Any]]:
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        communicator = WebsocketCommunicator(app, path, headers=raw)
        if extensions is not None:
            communicator.scope["extensions"] = extensions
        await communicator.send_input({"type": "websocket.connect"})
        sent = [await communicator.receive_output(2)]
        if sent[0]["type"] == "websocket.accept":
            if not await communicator.receive_nothing(0.2):
                sent.append(await communicator.receive_output(2))
            await communicator.disconnect()
            return sent
        if sent[0]["type"] == "websocket.http.response.start":
            sent.append(await communicator.receive_output(2))
        await communicator.wait(2)  # the app returned: nothing else runs
        return sent

    return asyncio.run(run())


def test_allowed_consumer_runs_with_the_decision_in_its_scope(app: Any, log: RecordingLog) -> None:
    accept, message = connect(app, "/ws/customers/c-1001/live", bearer())
    assert accept["type"] == "websocket.accept"
    body = json.loads(message["text"])
    decision, request, extra = log.last
    assert decision.effect is Effect.ALLOW and body["decision"] == decision.decision_id
    assert body["record"]["name"] == "Ada Berg" and body["subject"] == "u-anna"
    assert body["current"] is True
    assert request.action.name == "watch" and request.resource.id == "c-1001"
    assert dict(request.resource.properties) == {"owner_dept": "support", "sensitivity": 2}
    assert request.context["route"] == "WEBSOCKET /ws/customers/<str:customer_id>/live"
    assert extra["http"]["websocket"] is True
    assert extra["http"]["path"] == "/ws/customers/<str:customer_id>/live"  # not the id
    assert calls() == ["c-1001"]


def test_a_consumer_declared_without_its_path_is_decided_with_no_route(
    app: Any, log: RecordingLog
) -> None:
    accept, _ = connect(app, "/ws/bare/c-1001", bearer())
    assert accept["type"] == "websocket.accept"
    _, request, extra = log.last
    assert request.resource.id == "c-1001" and "route" not in request.context
    assert "path" not in extra["http"]  # the raw path (the id) is not logged
    [close] = connect(app, "/ws/bare/c-5150", bearer())
    assert close["code"] == 1008


def test_denied_is_closed_1008_before_the_consumer_runs(app: Any, log: RecordingLog) -> None:
    [close] = connect(app, "/ws/customers/c-5150/live", bearer())
    assert close["type"] == "websocket.close" and close["code"] == 1008
    assert close["reason"] == f"access_denied (decision {log.last[0].decision_id})"
    assert log.last[0].effect is Effect.DENY and calls() == []


def test_denied_with_the_denial_extension_is_problem_json(app: Any, log: RecordingLog) -> None:
    start, body = connect(app, "/ws/customers/c-5150/live", bearer(), DENIAL)
    assert start["type"] == "websocket.http.response.start" and start["status"] == 403
    assert dict(start["headers"])[b"content-type"] == b"application/problem+json"
    assert b"access_denied" in body["body"] and calls() == []


def test_step_up_is_the_rfc_9470_challenge_then_mfa_connects(app: Any, log: RecordingLog) -> None:
    start, _ = connect(app, "/ws/customers/c-1002/live", bearer(amr=("pwd",)), DENIAL)
    assert start["status"] == 401 and log.last[0].effect is Effect.STEP_UP
    [challenge] = parse_challenges(dict(start["headers"])[b"www-authenticate"].decode())
    assert challenge.params["error"] == "insufficient_user_authentication"
    [close] = connect(app, "/ws/customers/c-1002/live", bearer(amr=("pwd",)))
    assert close["code"] == 1008 and close["reason"].startswith("step_up_required")
    accept, _ = connect(app, "/ws/customers/c-1002/live", bearer())
    assert accept["type"] == "websocket.accept"
    assert calls() == ["c-1002"]


@pytest.mark.parametrize(
    ("headers", "error"),
    [({}, None), (bearer(token(key=rogue_key())), "invalid_token")],
    ids=["missing", "forged"],
)
def test_missing_and_invalid_tokens_are_refused(
    app: Any, log: RecordingLog, headers: dict[str, str], error: str | None
) -> None:
    start, _ = connect(app, "/ws/customers/c-1001/live", headers, DENIAL)
    assert start["status"] == 401
    [challenge] = parse_challenges(dict(start["headers"])[b"www-authenticate"].decode())
    assert challenge.params.get("error") == error
    [close] = connect(app, "/ws/customers/c-1001/live", headers)
    assert close["code"] == 1008 and close["reason"].startswith(error or "missing_token")
    assert log.last[1].subject.id == "anonymous" and calls() == []


def test_undeclared_consumers_are_untouched(app: Any, log: RecordingLog) -> None:
    accept, *_ = connect(app, "/ws/open", {})
    assert accept["type"] == "websocket.accept"
    assert calls() == ["open"] and log.entries == []


def test_a_declared_consumer_without_the_stack_never_runs(log: RecordingLog) -> None:
    from channels.routing import URLRouter
    from django_site import consumers

    from zerotrust.web.django import DjangoConfigError

    with pytest.raises(DjangoConfigError, match="ZeroTrustMiddleware"):
        connect(URLRouter(consumers.ROUTES), "/ws/customers/c-1001/live", bearer())
    assert calls() == []


def test_the_stack_decides_only_websockets(app: Any) -> None:
    from zerotrust.web import UnsupportedScopeError

    async def run() -> None:
        await app({"type": "http", "path": "/"}, None, None)

    with pytest.raises(UnsupportedScopeError):
        asyncio.run(run())


def test_obligations_the_consumer_does_not_handle_refuse_the_handshake(log: RecordingLog) -> None:
    from django.test.utils import override_settings
    from django_site import consumers

    mask = WATCH_POLICY.replace(
        "  - id: allow-own-department\n",
        "  - id: allow-own-department\n    obligations: [{type: mask, fields: [name]}]\n",
    )
    with override_settings(ZEROTRUST={"PDP": shipped_pdp(log, extra=mask), "CONFIG": web_config()}):
        [close] = connect(consumers.application(), "/ws/customers/c-1001/live", bearer())
    assert close["code"] == 1008 and close["reason"].startswith("obligation_unsupported")
    assert calls() == []


def test_requires_checks_its_arguments() -> None:
    from zerotrust.web import WebConfigError
    from zerotrust.web.channels import requires

    with pytest.raises(WebConfigError, match="resource_type"):
        requires("", "watch")
    with pytest.raises(WebConfigError, match="resource_id"):
        requires("customer_record", "watch", resource_id="")
