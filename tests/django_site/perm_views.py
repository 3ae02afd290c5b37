"""Views that ask ``user.has_perm``: the idioms the authentication backend serves."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import permission_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.forms.models import model_to_dict
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.views import View

from django_site.customers.models import Customer

CALLS: list[str] = []


class CustomerPage(PermissionRequiredMixin, View):
    """Django's mixin, with the object: ``has_perm(perm, obj)``."""

    permission_required = "customers.view_customer"
    raise_exception = True

    def has_permission(self) -> bool:
        self.object = get_object_or_404(Customer, pk=self.kwargs["customer_id"])
        return self.request.user.has_perm(self.permission_required, self.object)

    def get(self, request: HttpRequest, customer_id: str) -> JsonResponse:
        CALLS.append(customer_id)
        return JsonResponse(model_to_dict(self.object))


@permission_required("customers.change_customer", raise_exception=True)
def change_any(request: HttpRequest) -> JsonResponse:
    """No object: the PDP decides with no resource id and no properties."""
    CALLS.append("change_any")
    return JsonResponse({"changed": True})


@permission_required("customers.delete_customer", raise_exception=True)
def delete_any(request: HttpRequest) -> JsonResponse:
    """A permission zerotrust does not govern: ModelBackend decides."""
    CALLS.append("delete_any")
    return JsonResponse({"deleted": True})


def can_view(request: HttpRequest, customer_id: str) -> JsonResponse:
    """A page that shows what the user may do (as a template's ``perms`` would)."""
    customer = get_object_or_404(Customer, pk=customer_id)
    other = User.objects.get(username="bo")
    return JsonResponse(
        {
            "mine": request.user.has_perm("customers.view_customer", customer),
            "other": other.has_perm("customers.view_customer", customer),
        }
    )


def denied_by_hand(request: HttpRequest, customer_id: str) -> Any:
    customer = get_object_or_404(Customer, pk=customer_id)
    if not request.user.has_perm("customers.view_customer", customer):
        raise PermissionDenied
    CALLS.append(customer_id)
    return JsonResponse({"id": customer.pk})


async def async_page(request: HttpRequest, customer_id: str) -> JsonResponse:
    """The async idiom: ``await request.auser()`` and ``await user.ahas_perm(...)``."""
    user = await request.auser()
    customer = await Customer.objects.aget(pk=customer_id)
    if not await user.ahas_perm("customers.view_customer", customer):
        raise PermissionDenied
    CALLS.append(customer_id)
    return JsonResponse(model_to_dict(customer))


async def async_change_any(request: HttpRequest) -> JsonResponse:
    """No object: ModelBackend alone would grant it from the database."""
    user = await request.auser()
    if not await user.ahas_perm("customers.change_customer"):
        raise PermissionDenied
    CALLS.append("async_change_any")
    return JsonResponse({"changed": True})


urlpatterns = [
    path("async-page/<str:customer_id>", async_page),
    path("async-change-any", async_change_any),
    path("page/<str:customer_id>", CustomerPage.as_view(), name="page"),
    path("change-any", change_any),
    path("delete-any", delete_any),
    path("can-view/<str:customer_id>", can_view),
    path("by-hand/<str:customer_id>", denied_by_hand),
]
