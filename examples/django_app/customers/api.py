"""The DRF API: a viewset over the Customer model, each record decided by the PDP."""

from rest_framework import serializers, viewsets

from customers.models import Customer
from zerotrust.web.drf import ZeroTrustFilter, ZeroTrustPermission


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ("id", "name", "email", "card_number", "ssn", "owner_dept", "sensitivity")


class CustomerViewSet(viewsets.ReadOnlyModelViewSet):
    """``/api/customers/``: the records the caller may read (each decided, the refused
    left out); ``/api/customers/<id>/``: one record, decided on its fields. Card numbers
    and national IDs are masked in the JSON as the decisions say."""

    permission_classes = (ZeroTrustPermission,)
    filter_backends = (ZeroTrustFilter,)
    queryset = Customer.objects.all()
    serializer_class = CustomerSerializer
    zerotrust_resource_type = "customer_record"
    zerotrust_action = "read"
