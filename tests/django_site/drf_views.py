"""Django REST framework views guarded by ZeroTrustPermission (imported once Django is set up)."""

from __future__ import annotations

from typing import ClassVar

from rest_framework import serializers
from rest_framework.generics import RetrieveUpdateAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from web_helpers import CUSTOMERS

from django_site.customers.models import Customer
from zerotrust.web.drf import ZeroTrustPermission

CALLS: list[str] = []


class CustomerSerializer(serializers.ModelSerializer):  # type: ignore[misc]
    class Meta:
        model = Customer
        fields = ("id", "name", "email", "card_number", "ssn", "owner_dept", "sensitivity")


class CustomerDetail(RetrieveUpdateAPIView):  # type: ignore[misc]
    """A record loaded from SQLite by DRF's own ``get_object()``."""

    permission_classes = (ZeroTrustPermission,)
    queryset = Customer.objects.all()
    serializer_class = CustomerSerializer
    lookup_url_kwarg = "customer_id"
    zerotrust_resource_type = "customer_record"
    zerotrust_actions: ClassVar = {"GET": "read", "PATCH": "update"}
    zerotrust_resource_id_kwarg = "customer_id"
    zerotrust_properties: ClassVar = {"owner_dept": "owner_dept", "sensitivity": "sensitivity"}

    def get(self, request: Request, customer_id: str) -> Response:
        record = self.get_serializer(self.get_object()).data
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
