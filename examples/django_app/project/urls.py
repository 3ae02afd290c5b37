"""Django's own URL patterns: the middleware reads the resource id from them."""

from customers import views
from customers.api import CustomerViewSet
from django.urls import path
from rest_framework.routers import SimpleRouter

router = SimpleRouter()
router.register("api/customers", CustomerViewSet, basename="api-customer")

urlpatterns = [
    path("customers/<str:customer_id>", views.read_customer, name="customer"),
    path("departments/<str:dept>/export", views.DepartmentExport.as_view(), name="export"),
    path("health", views.health, name="health"),
    *router.urls,
]
