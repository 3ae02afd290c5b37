"""The DRF test site's URLs."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from django_site import drf_views

router = SimpleRouter()
router.register("api/customers", drf_views.CustomerViewSet, basename="api-customer")
router.register("refused-list", drf_views.RefusedListAfter, basename="refused-list")
router.register("unfiltered", drf_views.UnfilteredList, basename="unfiltered")

urlpatterns = [
    path("", include(router.urls)),
    path("refused/<str:customer_id>", drf_views.RefusedAfter.as_view()),
    path("departments/<str:dept>/customers", drf_views.DepartmentCustomers.as_view()),
    path("customers/<str:customer_id>", drf_views.CustomerDetail.as_view(), name="customer"),
    path("unchecked/<str:customer_id>", drf_views.Unchecked.as_view(), name="unchecked"),
    path("checked-write/<str:customer_id>", drf_views.CheckedWrite.as_view()),
    path("unchecked-write/<str:customer_id>", drf_views.UncheckedWrite.as_view()),
    path("departments/<str:dept>/export", drf_views.DepartmentExport.as_view(), name="export"),
    path("undeclared", drf_views.Undeclared.as_view(), name="undeclared"),
]
