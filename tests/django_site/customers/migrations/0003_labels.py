"""Columns under collations CEL must not follow. SQLite has NOCASE and RTRIM; on
PostgreSQL they are made here as nondeterministic ICU collations (case-insensitive;
blanks and punctuation ignored)."""

from django.db import migrations, models

COLLATIONS = (("NOCASE", "und-u-ks-level2"), ("RTRIM", "und-u-ka-shifted"))


def _collations(apps: object, schema_editor: object) -> None:
    connection = schema_editor.connection  # type: ignore[attr-defined]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name, locale in COLLATIONS:
            cursor.execute(
                f'CREATE COLLATION IF NOT EXISTS "{name}" '
                f"(provider = icu, locale = '{locale}', deterministic = false)"
            )


class Migration(migrations.Migration):
    dependencies = (("customers", "0002_plans"),)

    operations = (
        migrations.RunPython(_collations, migrations.RunPython.noop),
        migrations.CreateModel(
            name="Label",
            fields=[
                ("id", models.CharField(max_length=16, primary_key=True, serialize=False)),
                ("plain", models.TextField(null=True)),
                ("nocase", models.TextField(db_collation="NOCASE", null=True)),
                ("rtrim", models.TextField(db_collation="RTRIM", null=True)),
                ("count", models.BigIntegerField(null=True)),
                ("ratio", models.FloatField(null=True)),
                ("flag", models.BooleanField(null=True)),
            ],
            options={
                "ordering": ("id",),
            },
        ),
    )
