"""Django REST framework views guarded by ZeroTrustPermission (imported once Django is set up)."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers, viewsets
from rest_framework.generics import ListAPIView, RetrieveUpdateAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from web_helpers import CUSTOMERS

from django_site.customers.models import Customer
from zerotrust.web.drf import ZeroTrustFilter, ZeroTrustPermission

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


class DenyAll(BasePermission):  # type: ignore[misc]
    """A permission listed after ZeroTrustPermission that refuses: DRF's own 403."""

    message = "refused by the next permission"

    def has_permission(self, request: Request, view: Any) -> bool:
        return False


class RefusedAfter(CustomerDetail):
    permission_classes = (ZeroTrustPermission, DenyAll)


class CustomerViewSet(viewsets.ReadOnlyModelViewSet):  # type: ignore[misc]
    """List and detail over SQLite: each listed object decided by ZeroTrustFilter, the
    detail by has_object_permission; properties from the model's zerotrust_properties."""

    permission_classes = (ZeroTrustPermission,)
    filter_backends = (ZeroTrustFilter,)
    queryset = Customer.objects.all()
    serializer_class = CustomerSerializer
    zerotrust_resource_type = "customer_record"
    zerotrust_action = "read"


class RefusedListAfter(CustomerViewSet):
    permission_classes = (ZeroTrustPermission, DenyAll)


class UnfilteredList(CustomerViewSet):
    """Defers to the filter, then answers without running it: withheld."""

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(CustomerSerializer(self.get_queryset(), many=True).data)


class DepartmentCustomers(ListAPIView):  # type: ignore[misc]
    """A list decided once, in has_permission, on the properties its hook gives."""

    permission_classes = (ZeroTrustPermission,)
    serializer_class = CustomerSerializer
    zerotrust_resource_type = "customer_record"
    zerotrust_action = "read"

    def get_queryset(self) -> Any:
        return Customer.objects.filter(owner_dept=self.kwargs["dept"], sensitivity__lte=2)

    def get_zerotrust_properties(self) -> dict[str, Any]:
        return {"owner_dept": self.kwargs["dept"], "sensitivity": 2}
