"""Channels consumers: one declared with zerotrust.web.channels.requires, one not."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import URLRouter
from django.forms.models import model_to_dict
from django.urls import path

from django_site.customers.models import Customer
from zerotrust.web import current_request
from zerotrust.web.channels import ZeroTrustMiddleware, requires

CALLS: list[str] = []


def attributes(customer_id: str) -> dict[str, Any] | None:
    """Read from SQLite (in a worker thread: the guard runs sync parts there)."""
    found = Customer.objects.filter(pk=customer_id).first()
    return (
        None
        if found is None
        else {"owner_dept": found.owner_dept, "sensitivity": found.sensitivity}
    )


class LiveConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        customer_id = self.scope["url_route"]["kwargs"]["customer_id"]
        CALLS.append(customer_id)
        await self.accept()
        record = await database_sync_to_async(Customer.objects.get)(pk=customer_id)
        await self.send_json(
            {
                "record": model_to_dict(record, fields=["id", "name", "owner_dept"]),
                "decision": self.scope["zerotrust_decision"].decision_id,
                "subject": self.scope["zerotrust_request"].subject.id,
                "current": current_request() is not None,
            }
        )


class OpenConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Not declared: left alone."""

    async def connect(self) -> None:
        CALLS.append("open")
        await self.accept()


live = requires("customer_record", "watch", resource_id="customer_id", properties=attributes)

ROUTES = [
    live(path("ws/customers/<str:customer_id>/live", LiveConsumer.as_asgi())),
    path("ws/bare/<str:customer_id>", live(LiveConsumer.as_asgi())),  # the app alone
    path("ws/open", OpenConsumer.as_asgi()),
]


def application() -> Any:
    """The websocket side of a ProtocolTypeRouter (built once settings.ZEROTRUST is set)."""
    return ZeroTrustMiddleware(URLRouter(ROUTES))
