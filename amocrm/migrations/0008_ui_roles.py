"""Two ready groups (README "Roles"): "Operators" watch everything and do the daily fixes, "Integration admins"
may do everything in the integration's apps.

Permissions are normally created after all migrations ran (post_migrate); on a fresh database they do not exist
yet here, so this migration creates the ones of our apps first. config.roles keeps "Integration admins" complete
when later migrations add permissions.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

APPS = ("amocrm", "leads", "sales", "monitoring", "conversions")
OPERATORS = "Operators"
INTEGRATION_ADMINS = "Integration admins"
# Besides every view_* permission of APPS: the daily fixes. Retrying a lead and marking it spam are gated by
# leads.change_lead (the lead's own fields stay read-only in the admin); the sales report and its CSV by view_sale.
OPERATOR_EXTRA = [
    ("leads", "change_lead"),  # retry push, mark as spam
    ("amocrm", "reprocess_webhookevent"),  # reprocess webhook events
    ("amocrm", "pause_account"),  # pause and resume sending
    ("conversions", "export_conversions"),  # download the conversions CSV for the ad platforms
]


def _ensure_permissions(apps):
    # The installed app's config (create_permissions reads models_module from it) with the historical models.
    for label in APPS:
        create_permissions(global_apps.get_app_config(label), apps=apps, verbosity=0)


def create_groups(apps, schema_editor):
    _ensure_permissions(apps)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    ours = permission_model.objects.filter(content_type__app_label__in=APPS)

    operators, _ = group_model.objects.get_or_create(name=OPERATORS)
    extra = [ours.get(content_type__app_label=label, codename=codename) for label, codename in OPERATOR_EXTRA]
    operators.permissions.add(*ours.filter(codename__startswith="view_"), *extra)

    admins, _ = group_model.objects.get_or_create(name=INTEGRATION_ADMINS)
    admins.permissions.add(*ours)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[OPERATORS, INTEGRATION_ADMINS]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("amocrm", "0007_perf_synclog_operation_idx"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("leads", "0009_perf_search_indexes"),
        ("sales", "0003_reports_spend_losses"),
        ("monitoring", "0002_default_rules"),
        ("conversions", "0001_attrib_conversion_export"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
