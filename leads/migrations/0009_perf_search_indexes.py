"""Indexes for the admin's lead search (leads/admin_search.py) and for the UTM campaign filters of leads and sales.

Built CONCURRENTLY on PostgreSQL (the intake keeps writing while a big table is indexed), so the migration is not
atomic. Other databases (SQLite in the embedded mode) get no index: the same lookups run unindexed there.
"""

from django.db import migrations

INDEXES = {
    # `reverse(phone) LIKE '7654%'` finds phones ending in 4567, whatever the operator typed before them.
    "leads_lead_phone_tail_idx": "leads_lead (reverse(phone) text_pattern_ops)",
    "leads_lead_email_prefix_idx": "leads_lead (email varchar_pattern_ops)",
    "leads_lead_name_prefix_idx": "leads_lead (upper(name) text_pattern_ops)",
    # The UTM campaign filters of leads and sales (through the sale's lead) and their counts.
    "leads_lead_utm_campaign_idx": "leads_lead (utm_campaign)",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, target in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {target}")
    # Statistics of the new expressions: without them the planner guesses that a search matches 0.5 % of the
    # leads and walks the created_at index past every lead instead of using the search's index.
    schema_editor.execute("ANALYZE leads_lead")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("leads", "0008_push13_routing_fields"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
