"""The customer records, in SQLite: what the DRF API and the live WebSocket serve."""

from typing import ClassVar

from django.db import models


class Customer(models.Model):
    id = models.CharField(max_length=16, primary_key=True)
    name = models.CharField(max_length=100)
    email = models.EmailField()
    phone = models.CharField(max_length=32)
    card_number = models.CharField(max_length=19)
    ssn = models.CharField(max_length=11)
    owner_dept = models.CharField(max_length=32)
    sensitivity = models.IntegerField()

    # resource property -> field: what the DRF permission and filter send the PDP
    zerotrust_properties: ClassVar = {"owner_dept": "owner_dept", "sensitivity": "sensitivity"}

    class Meta:
        ordering = ("id",)
