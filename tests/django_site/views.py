"""Views declared with @requires and ZeroTrustRequiredMixin, sync and async."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views import View
from web_helpers import CUSTOMERS, customer_properties

from zerotrust.web import current_request
from zerotrust.web.django import ZeroTrustRequiredMixin, requires

CALLS: list[str] = []


def attributes(customer_id: str) -> Any:
    return customer_properties("customer_record", customer_id, None)


@requires("customer_record", "read", resource_id="customer_id", properties=attributes)
def read_customer(request: HttpRequest, customer_id: str) -> JsonResponse:
    CALLS.append(customer_id)
    return JsonResponse(
        {
            **CUSTOMERS[customer_id],
            "decision": request.zerotrust_decision.decision_id,  # type: ignore[attr-defined]
            "subject": request.zerotrust_request.subject.id,  # type: ignore[attr-defined]
            "current": getattr(current_request(), "resource", None) is not None,
        }
    )


@requires("customer_record", "update", resource_id="customer_id", properties=attributes)
def update_customer(request: HttpRequest, customer_id: str) -> JsonResponse:
    CALLS.append(customer_id)
    return JsonResponse(CUSTOMERS[customer_id])


export_declared = requires(
    "customer_record",
    "export",
    resource_id="dept",
    properties=lambda dept: {"owner_dept": dept, "sensitivity": 3},
    context={"records": 2},
)


@export_declared
def export(request: HttpRequest, dept: str) -> StreamingHttpResponse:
    text = json.dumps([r for r in CUSTOMERS.values() if r["owner_dept"] == dept])
    chunks = (text[i : i + 40] for i in range(0, len(text), 40))
    return StreamingHttpResponse(chunks, content_type="application/json")


@requires("customer_record", "read", resource_id="customer_id", properties=attributes)
def text(request: HttpRequest, customer_id: str) -> HttpResponse:
    CALLS.append(customer_id)
    return HttpResponse("card 4111111111111111", content_type="text/plain")


@requires("customer_record", "read", resource_id="customer_id", properties=attributes)
async def notes(request: HttpRequest, customer_id: str, page: int) -> JsonResponse:
    CALLS.append(customer_id)
    return JsonResponse({"id": customer_id, "page": page, "ssn": CUSTOMERS[customer_id]["ssn"]})


@requires("customer_record", "read", resource_id="customer_id")
def misdeclared(request: HttpRequest, id: str) -> HttpResponse:
    CALLS.append(id)
    return HttpResponse("ran")


class CardView(ZeroTrustRequiredMixin, View):
    resource_type = "customer_record"
    action = "read"
    resource_id_kwarg = "customer_id"

    @classmethod
    def zerotrust_properties(cls, **kwargs: Any) -> Any:
        return attributes(kwargs["customer_id"])

    def get(self, request: HttpRequest, customer_id: str) -> JsonResponse:
        CALLS.append(customer_id)
        return JsonResponse({"card_number": CUSTOMERS[customer_id]["card_number"]})


class AsyncCardView(CardView):
    async def get(self, request: HttpRequest, customer_id: str) -> JsonResponse:  # type: ignore[override]
        CALLS.append(customer_id)
        current = current_request()
        return JsonResponse(
            {
                "card_number": CUSTOMERS[customer_id]["card_number"],
                "current": getattr(current, "resource", None) is not None,
            }
        )


def health(request: HttpRequest) -> JsonResponse:
    CALLS.append("health")
    return JsonResponse({"status": "ok"})


@requires("customer_record", "read", resource_id="customer_id", properties=attributes)
def nested(request: HttpRequest, customer_id: str) -> JsonResponse:
    """Declared for one customer, it calls the view of another: that must not run."""
    CALLS.append(customer_id)
    return read_customer(request, customer_id="c-5150")


@requires("customer_record", "read", resource_id="customer_id", properties=attributes)
def empty(request: HttpRequest, customer_id: str) -> HttpResponse:
    CALLS.append(customer_id)
    return HttpResponse(status=204)


@export_declared
async def async_export(request: HttpRequest, dept: str) -> StreamingHttpResponse:
    text = json.dumps([r for r in CUSTOMERS.values() if r["owner_dept"] == dept])

    async def chunks() -> Any:
        for i in range(0, len(text), 40):
            yield text[i : i + 40].encode()

    return StreamingHttpResponse(chunks(), content_type="application/json")
