"""The admin's look (django-unfold): site names, the language switcher and the sidebar grouped by task.

Read by config/settings.py as UNFOLD. Every sidebar entry is shown only to a user allowed to view what it
opens, so an operator never meets a link that answers "permission denied".
"""

from django.urls import NoReverseMatch, reverse, reverse_lazy
from django.utils.translation import gettext_lazy as _


def _can_view(*models: str):
    """A sidebar permission check: the user may view at least one of `models` ("app.model")."""
    def check(request) -> bool:
        return any(request.user.has_perm(f"{model.split('.')[0]}.view_{model.split('.')[1]}") for model in models)
    return check


def _url(url_name: str):
    """The page's address, resolved per request; "" when no such page exists (another app renamed or removed
    it), which hides the entry instead of breaking every admin page with NoReverseMatch."""
    def link(request) -> str:
        try:
            return reverse(url_name)
        except NoReverseMatch:
            return ""
    return link


def _item(title, icon: str, url_name: str, model: str) -> dict:
    link, may_view = _url(url_name), _can_view(model)
    return {"title": title, "icon": icon, "link": link,
            "permission": lambda request: may_view(request) and bool(link(request)),
            # unfold marks an entry active by its link, which it reads as text: a callable link needs its own test.
            "active": lambda request: bool(link(request)) and request.path.startswith(link(request))}


SIDEBAR_NAVIGATION = [
    {
        "title": _("Overview"),
        "items": [{"title": _("Dashboard"), "icon": "dashboard", "link": reverse_lazy("admin:index")}],
    },
    {
        "title": _("Connection"),
        "collapsible": True,
        "items": [
            _item(_("amoCRM accounts"), "link", "admin:amocrm_account_changelist", "amocrm.account"),
            _item(_("Pipelines"), "view_kanban", "admin:amocrm_pipeline_changelist", "amocrm.pipeline"),
            _item(_("amoCRM users"), "badge", "admin:amocrm_amouser_changelist", "amocrm.amouser"),
            _item(_("Custom fields"), "list_alt", "admin:amocrm_customfield_changelist", "amocrm.customfield"),
            _item(_("Sync log"), "sync", "admin:amocrm_synclog_changelist", "amocrm.synclog"),
            _item(_("Webhook deliveries"), "webhook", "admin:amocrm_webhookevent_changelist", "amocrm.webhookevent"),
        ],
    },
    {
        "title": _("Leads"),
        "collapsible": True,
        "items": [
            _item(_("Lead sources"), "web", "admin:leads_leadsource_changelist", "leads.leadsource"),
            _item(_("Leads"), "inbox", "admin:leads_lead_changelist", "leads.lead"),
        ],
    },
    {
        "title": _("Sales & reports"),
        "collapsible": True,
        "items": [
            _item(_("Sales"), "payments", "admin:sales_sale_changelist", "sales.sale"),
            _item(_("Sales report"), "bar_chart", "admin:sales_sale_report", "sales.sale"),
            _item(_("Ad spend"), "account_balance_wallet", "admin:sales_adspend_changelist", "sales.adspend"),
            _item(_("Lost deals"), "block", "admin:sales_dealloss_changelist", "sales.dealloss"),
            _item(_("Conversions to ad platforms"), "ads_click", "admin:conversions_conversionexport_changelist",
                  "conversions.conversionexport"),
        ],
    },
    {
        "title": _("Alerts"),
        "collapsible": True,
        "items": [
            _item(_("Incidents"), "warning", "admin:monitoring_incident_changelist", "monitoring.incident"),
            _item(_("Alert rules"), "rule", "admin:monitoring_alertrule_changelist", "monitoring.alertrule"),
            _item(_("Alert channels"), "campaign", "admin:monitoring_alertchannel_changelist",
                  "monitoring.alertchannel"),
            _item(_("Notifications"), "mail", "admin:monitoring_notification_changelist", "monitoring.notification"),
        ],
    },
    {
        "title": _("Users"),
        "collapsible": True,
        "items": [
            _item(_("Users"), "person", "admin:auth_user_changelist", "auth.user"),
            _item(_("Groups"), "group", "admin:auth_group_changelist", "auth.group"),
        ],
    },
]

def environment(request):
    """A badge in the header while DEBUG is on, so a development copy is never taken for the real one."""
    from django.conf import settings

    return [_("Development"), "warning"] if settings.DEBUG else None


UNFOLD = {
    "SITE_TITLE": _("amoCRM integration"),
    "SITE_HEADER": _("amoCRM integration"),
    "SITE_SUBHEADER": _("Website leads and sales"),
    "SITE_SYMBOL": "hub",
    # "View site" opens the landing page with the embed instructions (templates/landing.html).
    "SITE_URL": "/",
    "SHOW_LANGUAGES": True,
    "ENVIRONMENT": environment,
    "SHOW_HISTORY": True,
    # The home page: each account's numbers and the problems that need a person (config/dashboard.py).
    "DASHBOARD_CALLBACK": "config.dashboard.dashboard_callback",
    "SIDEBAR": {"show_search": True, "show_all_applications": False, "navigation": SIDEBAR_NAVIGATION},
}
