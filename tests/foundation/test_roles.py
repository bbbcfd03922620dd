"""The two ready-made groups: created by a migration with exactly their permissions, kept complete for admins."""

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission

from config.roles import APPS, INTEGRATION_ADMINS, OPERATORS, complete_integration_admins

pytestmark = pytest.mark.django_db


def codenames(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{app}.{codename}" for app, codename in
            group.permissions.values_list("content_type__app_label", "codename")}


def ours() -> set[str]:
    return {f"{app}.{codename}" for app, codename in
            Permission.objects.filter(content_type__app_label__in=APPS)
            .values_list("content_type__app_label", "codename")}


def test_operators_view_everything_and_do_the_daily_fixes_only():
    views = {name for name in ours() if name.split(".")[1].startswith("view_")}

    assert codenames(OPERATORS) == views | {
        "leads.change_lead",  # retry push, mark as spam
        "amocrm.reprocess_webhookevent",
        "amocrm.pause_account",
        "conversions.export_conversions",  # the conversions CSV (a report download)
    }
    assert "sales.view_sale" in views  # the report and its CSV
    assert {"amocrm.view_account", "leads.view_lead", "monitoring.view_incident"} <= views
    assert not {"amocrm.change_account", "amocrm.delete_account", "leads.change_leadsource"} & codenames(OPERATORS)


def test_integration_admins_may_do_everything_in_our_apps_and_nothing_else():
    assert codenames(INTEGRATION_ADMINS) == ours()
    assert not any(name.startswith("auth.") for name in codenames(INTEGRATION_ADMINS))


def test_the_pause_permission_is_declared_on_the_account():
    permission = Permission.objects.get(content_type__app_label="amocrm", codename="pause_account")

    assert permission.name == "Can pause and resume sending"


def test_a_permission_added_later_reaches_integration_admins_but_not_operators():
    from django.contrib.contenttypes.models import ContentType

    from amocrm.models import Account

    late = Permission.objects.create(codename="later_button", name="A later button",
                                     content_type=ContentType.objects.get_for_model(Account))

    complete_integration_admins(apps.get_app_config("amocrm"))

    assert "amocrm.later_button" in codenames(INTEGRATION_ADMINS)
    assert "amocrm.later_button" not in codenames(OPERATORS)
    assert late.pk


def test_an_operator_user_may_retry_and_pause_but_not_change_the_connection(django_user_model):
    user = django_user_model.objects.create_user("op", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=OPERATORS))

    assert user.has_perms(["leads.change_lead", "amocrm.pause_account", "amocrm.reprocess_webhookevent",
                           "sales.view_sale", "monitoring.view_incident"])
    assert not user.has_perm("amocrm.change_account")
