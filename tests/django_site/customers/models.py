"""A customer record: what the policies decide on (department, sensitivity) and what
the obligations mask (card number, national ID) or tokenize (email). Accounts and their
departments: what query plans filter (tests/test_plan_django.py, the query plans page)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class Customer(models.Model):
    id = models.CharField(max_length=16, primary_key=True)
    name = models.CharField(max_length=100)
    email = models.EmailField()
    card_number = models.CharField(max_length=19)
    ssn = models.CharField(max_length=11)
    owner_dept = models.CharField(max_length=32)
    sensitivity = models.IntegerField()

    # resource property -> field: what zerotrust's backend and DRF permission send the PDP
    zerotrust_properties: ClassVar = {"owner_dept": "owner_dept", "sensitivity": "sensitivity"}

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return self.id


class Department(models.Model):
    name = models.CharField(max_length=32, null=True)


class Account(models.Model):
    # NULL is a missing property: a condition reading it errors, as in evaluate
    id = models.CharField(max_length=16, primary_key=True)
    level = models.IntegerField(null=True)
    name = models.TextField(null=True)
    active = models.BooleanField(null=True)
    score = models.FloatField(null=True)
    department = models.ForeignKey(Department, null=True, on_delete=models.SET_NULL)
    opened = models.DateField(null=True)

    class Meta:
        ordering = ("id",)


class Label(models.Model):
    """What a filter must decide as CEL does, not as the database would: text under
    collations that ignore case or trailing blanks (on PostgreSQL, ICU collations of
    those names made by the migration), integers beyond a double's precision, floats,
    and on SQLite whatever a column is given."""

    id = models.CharField(max_length=16, primary_key=True)
    plain = models.TextField(null=True)
    nocase = models.TextField(null=True, db_collation="NOCASE")
    rtrim = models.TextField(null=True, db_collation="RTRIM")
    count = models.BigIntegerField(null=True)
    ratio = models.FloatField(null=True)
    flag = models.BooleanField(null=True)

    class Meta:
        ordering = ("id",)
