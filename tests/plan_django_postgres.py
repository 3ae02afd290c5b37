"""Child of tests/test_plan_django.py: the same properties and regressions through
Django's ORM on PostgreSQL (``python plan_django_postgres.py PORT``, a server whose
default collation is not code-point order). A child because Django's settings, and so
its database, are fixed once per process."""

from __future__ import annotations

import sys

import django
from django.conf import settings


def main(port: int) -> None:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django_site.customers",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "postgres",
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": port,
            }
        },
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    from django.core.management import call_command
    from django.db import connections, transaction

    call_command("migrate", "customers", verbosity=0)
    import test_plan_django as t  # (its django_setup finds Django configured)
    import test_plan_django_columns as c

    try:
        for node in t.REGRESSIONS:
            with transaction.atomic():
                t._exact(node)
                transaction.set_rollback(True)
        t.test_a_node_is_true_and_false_on_the_rows_python_says()
        t.test_the_filter_selects_exactly_the_rows_evaluate_allows()
        for when in c.CASES:  # the Label model's collations are ICU's, case-insensitive
            c.test_what_the_column_would_decide_otherwise(when)
        c.test_nan_equals_and_orders_nothing()
        c.test_collations_big_numbers_and_strange_values_decide_nothing()
        c.test_an_integer_key_is_the_resource_id_as_text_so_an_id_deny_holds()
        c.test_an_integer_key_decides_as_its_text()
        c.test_float_and_char_fields_are_double_and_varchar_on_postgresql()
    finally:
        connections.close_all()


if __name__ == "__main__":
    main(int(sys.argv[1]))
