"""Django REST framework views guarded by ZeroTrustPermission (imported once Django is set up)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import Http404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from web_helpers import CUSTOMERS

from zerotrust.web.drf import ZeroTrustPermission

CALLS: list[str] = []


class CustomerDetail(APIView):
    permission_classes = (ZeroTrustPermission,)
    zerotrust_resource_type = "customer_record"
    zerotrust_actions: ClassVar = {"GET": "read", "PATCH": "update"}
    zerotrust_resource_id_kwarg = "customer_id"
    zerotrust_properties: ClassVar = {"owner_dept": "owner_dept", "sensitivity": "sensitivity"}

    def get_object(self) -> dict[str, Any]:
        record = CUSTOMERS.get(self.kwargs["customer_id"])
        if record is None:
            raise Http404
        self.check_object_permissions(self.request, record)
        return record

    def get(self, request: Request, customer_id: str) -> Response:
        record = self.get_object()
        CALLS.append(customer_id)
        return Response({**record, "decision": request.zerotrust_decision.decision_id})


class Unchecked(CustomerDetail):
    """Never checks the object: its answer must not leave."""

    def get(self, request: Request, customer_id: str) -> Response:
        CALLS.append(customer_id)
        return Response(CUSTOMERS[customer_id])


class CheckedWrite(CustomerDetail):
    """A write of its own that loads (so checks) the object first, and says so."""

    zerotrust_checks_object = True

    def patch(self, request: Request, customer_id: str) -> Response:
        self.get_object()
        CALLS.append(f"patched {customer_id}")
        return Response(status=204)


class UncheckedWrite(CustomerDetail):
    """A write of its own that never loads the object: decided before it runs."""

    def patch(self, request: Request, customer_id: str) -> Response:
        CALLS.append(f"patched {customer_id}")
        return Response(status=204)


class DepartmentExport(APIView):
    """No object id in the URL: has_permission decides."""

    permission_classes = (ZeroTrustPermission,)
    zerotrust_resource_type = "customer_record"
    zerotrust_action = "export"
    zerotrust_resource_id_kwarg = "customer_id"

    def get(self, request: Request, dept: str) -> Response:
        CALLS.append(dept)
        return Response([r for r in CUSTOMERS.values() if r["owner_dept"] == dept])


class Undeclared(APIView):
    permission_classes = (ZeroTrustPermission,)

    def get(self, request: Request) -> Response:
        CALLS.append("undeclared")
        return Response({})
