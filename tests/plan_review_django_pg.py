"""Child of tests/test_plan_review.py (R3b): the Django adapter on PostgreSQL against a
column with a nondeterministic (case-insensitive) ICU collation. Exit 1 on a mismatch
with evaluate. ``python plan_review_django_pg.py PORT``."""

from __future__ import annotations

import sys

import django
from django.conf import settings


def main(port: int) -> int:
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
    from django.db import connection, transaction
    from django_site.customers.models import Account

    from zerotrust import PolicyDecisionPoint
    from zerotrust.plan.django import to_q

    call_command("migrate", "customers", verbosity=0)
    bad = 0
    with transaction.atomic():
        with connection.cursor() as c:
            c.execute("DROP COLLATION IF EXISTS review_ci")
            c.execute(
                "CREATE COLLATION review_ci (provider = icu, "
                "locale = 'und-u-ks-level2', deterministic = false)"
            )
            c.execute("ALTER TABLE customers_account ALTER COLUMN name TYPE text COLLATE review_ci")
        rows = [("a", "Ada"), ("b", "ADA"), ("c", "ada")]
        for rid, name in rows:
            Account.objects.create(id=rid, name=name)
        fields = {"resource.id": "pk", "resource.properties.name": "name"}
        for when in (
            'resource.properties.name == "ada"',
            'resource.properties.name in ["ada"]',
            'resource.properties.name.startsWith("ad")',
            'resource.properties.name != "ADA"',
        ):
            pdp = PolicyDecisionPoint.from_texts(
                {
                    "p.yaml": "policy: p\ntarget: {resources: [account], actions: [read]}\n"
                    f"rules:\n  - {{id: a, effect: allow, when: '{when}'}}\n"
                }
            )
            req = {
                "subject": {"type": "user", "id": "u"},
                "action": {"name": "read"},
                "resource": {"type": "account"},
            }
            truth = sorted(
                rid
                for rid, name in rows
                if pdp.evaluate(
                    {
                        **req,
                        "resource": {"type": "account", "id": rid, "properties": {"name": name}},
                    }
                ).allowed
            )
            got = sorted(a.id for a in Account.objects.filter(to_q(pdp.plan(req), Account, fields)))
            if got != truth:
                bad += 1
                print(f"MISMATCH {when}: evaluate {truth}, django {got}")
        transaction.set_rollback(True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
