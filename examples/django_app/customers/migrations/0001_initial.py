"""The customers table, filled with the demo records (examples/demo_setup.CUSTOMERS)."""

from typing import Any

from django.db import migrations, models


def load_demo_records(apps: Any, schema_editor: Any) -> None:
    from examples.demo_setup import CUSTOMERS

    customer = apps.get_model("customers", "Customer")
    customer.objects.bulk_create(customer(**record) for record in CUSTOMERS.values())


class Migration(migrations.Migration):
    initial = True
    dependencies = ()
    operations = (
        migrations.CreateModel(
            name="Customer",
            fields=[
                ("id", models.CharField(max_length=16, primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=100)),
                ("email", models.EmailField(max_length=254)),
                ("phone", models.CharField(max_length=32)),
                ("card_number", models.CharField(max_length=19)),
                ("ssn", models.CharField(max_length=11)),
                ("owner_dept", models.CharField(max_length=32)),
                ("sensitivity", models.IntegerField()),
            ],
            options={"ordering": ("id",)},
        ),
        migrations.RunPython(load_demo_records, migrations.RunPython.noop),
    )
