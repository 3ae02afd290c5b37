"""A function view with @requires, a class-based view with the mixin, one left alone."""

from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.views import View

from examples.demo_setup import CUSTOMERS
from zerotrust.web.django import ZeroTrustRequiredMixin, requires


def attributes(customer_id: str) -> dict[str, Any] | None:
    """What the policies may know of a record; None: unknown (the policies refuse)."""
    record = CUSTOMERS.get(customer_id)
    if record is None:
        return None
    return {"owner_dept": record["owner_dept"], "sensitivity": record["sensitivity"]}


@requires("customer_record", "read", resource_id="customer_id", properties=attributes)
def read_customer(request: HttpRequest, customer_id: str) -> JsonResponse:
    record = CUSTOMERS.get(customer_id)
    if record is None:
        raise Http404
    # The middleware masks fields in this JSON as the decision's obligations say.
    response = JsonResponse(record)
    response["x-decision-id"] = request.zerotrust_decision.decision_id  # type: ignore[attr-defined]
    return response


class DepartmentExport(ZeroTrustRequiredMixin, View):
    resource_type = "customer_record"
    action = "export"
    resource_id_kwarg = "dept"

    @classmethod
    def zerotrust_properties(cls, **kwargs: Any) -> dict[str, Any]:
        return {"owner_dept": kwargs["dept"], "sensitivity": 3}

    @classmethod
    def zerotrust_context(cls, **kwargs: Any) -> dict[str, Any]:
        return {"records": sum(1 for c in CUSTOMERS.values() if c["owner_dept"] == kwargs["dept"])}

    def get(self, request: HttpRequest, dept: str) -> JsonResponse:
        records = [c for c in CUSTOMERS.values() if c["owner_dept"] == dept]
        return JsonResponse({"department": dept, "records": records})


def health(request: HttpRequest) -> JsonResponse:
    """Not declared: zerotrust leaves it alone."""
    return JsonResponse({"status": "ok"})
