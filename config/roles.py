"""The ready-made groups (README "Roles") kept complete: "Integration admins" get every permission of the
integration's apps, also the ones later migrations add (a new model, a new button's permission).

The groups themselves are created by amocrm/migrations/0008_ui_roles.py. "Operators" are not extended
automatically: what operators may do is a decision, made in a migration.
"""

from django.contrib.auth.models import Group, Permission

APPS = ("amocrm", "leads", "sales", "monitoring", "conversions")
OPERATORS = "Operators"
INTEGRATION_ADMINS = "Integration admins"


def complete_integration_admins(sender, **kwargs) -> None:
    """post_migrate: add the app's permissions to "Integration admins" (when the group exists; never recreated)."""
    if sender.label not in APPS:
        return
    group = Group.objects.using(kwargs.get("using", "default")).filter(name=INTEGRATION_ADMINS).first()
    if group is not None:
        group.permissions.add(*Permission.objects.filter(content_type__app_label=sender.label))
