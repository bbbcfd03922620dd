"""An index for the sync log's operation filter: the newest rows of one operation, however rare, without a scan.

Built CONCURRENTLY on PostgreSQL (calls keep being logged while 3 M rows are indexed), so the migration is not
atomic; other databases get a plain index.
"""

from django.db import migrations

NAME = "amocrm_synclog_operation_idx"
TARGET = "amocrm_synclog (operation, created_at)"


def create(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"CREATE INDEX {concurrently}IF NOT EXISTS {NAME} ON {TARGET}")
    schema_editor.execute("ANALYZE amocrm_synclog")


def drop(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {NAME}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("amocrm", "0006_push13_user_active_contact_fields"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
