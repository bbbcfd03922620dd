"""One row per alert rule with sensible defaults: each on, except "lead source silent"."""

from django.db import migrations

# (kind, enabled, threshold, window minutes, reminder minutes); a copy, so later edits of the code's
# defaults do not change what this migration did.
DEFAULTS = [
    ("account_reauth", True, 1, 60, 240),
    ("account_blocked", True, 1, 60, 240),
    ("rate_limited", True, 10, 15, 240),
    ("amocrm_unreachable", True, 15, 60, 240),
    ("token_refresh_failing", True, 2, 120, 240),
    ("long_lived_expiring", True, 7, 60, 1440),
    ("webhook_disabled", True, 1, 60, 240),
    ("webhook_silent", True, 6, 60, 480),
    ("leads_failing", True, 1, 60, 240),
    ("pending_lead_old", True, 30, 60, 240),
    ("source_silent", False, 24, 60, 1440),
    ("webhook_events_failing", True, 3, 60, 240),
]


def create_rules(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    for kind, enabled, threshold, window, reminder in DEFAULTS:
        AlertRule.objects.get_or_create(kind=kind, defaults={
            "enabled": enabled, "threshold": threshold, "window_minutes": window, "reminder_minutes": reminder})


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_initial")]

    operations = [migrations.RunPython(create_rules, migrations.RunPython.noop)]
