"""Admin for lead sources (amoCRM placement chosen by name, the embed snippet) and leads (badges, retry, spam)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.admin import ModelAdmin

from amocrm import error_messages
from amocrm.admin import names, pretty_json
from amocrm.models import CustomField
from config.admin_paging import EstimatedCountPaginator, with_cheap_dates

from . import actions, deal_names
from .admin_lists import LIST_DEFERRED, SEARCH_HELP, UtmCampaignFilter, UtmSourceFilter, recent_lead_counts
from .admin_search import lead_search
from .admin_source_form import LeadSourceForm
from .attribution import FIRST_TOUCH_COLUMNS, ID_FIELDS
from .intake.api import HONEYPOT_FIELD
from .models import Lead, LeadSource
from .payloads import deal_name
from .sources import lead_source_hook_url

LEAD_BADGES = {
    Lead.Status.PENDING: "#b8860b",
    Lead.Status.SENDING: "#1f6feb",
    Lead.Status.SENT: "#1e7e34",
    Lead.Status.FAILED: "#c0392b",
    Lead.Status.SPAM: "#6c757d",
}
# The lead page's "Attribution" fieldset shows these after the last-touch UTMs (leads/attribution.py).
ATTRIBUTION_FIELDS = [*FIRST_TOUCH_COLUMNS.values(), *ID_FIELDS]


# ============================================================================ lead sources


def tracker_url() -> str:
    """tracker.js's absolute URL for the customer's pages: SITE_URL + STATIC_URL + amocrm/tracker.js.

    The plain name, not the hashed one the manifest storage gives: the line is pasted once into other
    sites and must keep working after every deploy (whitenoise serves the plain name with a short cache).
    """
    static_url = settings.STATIC_URL or "/static/"
    if not urlsplit(static_url).scheme:
        static_url = settings.SITE_URL.rstrip("/") + "/" + static_url.lstrip("/")
    return static_url.rstrip("/") + "/amocrm/tracker.js"


@admin.register(LeadSource)
class LeadSourceAdmin(ModelAdmin):
    form = LeadSourceForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "account", "mode", "is_active", "is_default", "public_key", "lead_count"]
    list_filter = ["account", "mode", "is_active"]
    search_fields = ["name", "public_key"]
    list_select_related = ["account"]
    readonly_fields = ["public_key", "is_default", "embed_snippet", "deal_fields_hint", "deal_name_preview"]
    fieldsets = [
        (None, {"fields": ["name", "account", "is_active", "public_key", "is_default"]}),
        (_("Where leads go in amoCRM"), {"fields": ["mode", "pipeline_id", "status_id", "responsible_user_id",
                                                 "deal_name_template", "deal_name_preview", "tags", "form_id"]}),
        (_("Custom fields"), {"fields": ["field_mapping", "deal_fields_hint", "contact_field_mapping"]}),
        (_("Managers, tasks and repeat enquiries"), {"fields": [
            "responsible_mode", "responsible_user_ids", "task_enabled", "task_text", "task_due_minutes",
            "task_working_hours", "task_type_id", "dedup_policy", "dedup_days"]}),
        (_("The website"), {"fields": ["allowed_origins", "success_url", "error_url", "embed_snippet"]}),
    ]
    hook_fieldset = (_("Form-builder hook (Tilda, WordPress, Make, a backend)"),
                     {"fields": ["hook_preset", "hook_aliases", "hook_instructions"]})
    actions = ["rotate_hook_secret"]

    def get_fieldsets(self, request, obj=None):
        # The hook URL is a credential: only those who may change the source see it.
        if obj is not None and self.has_change_permission(request, obj):
            return [*self.fieldsets, self.hook_fieldset]
        return self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "hook_instructions"]

    @admin.action(permissions=["change"], description=_("Rotate hook secret (the old hook URL stops working)"))
    def rotate_hook_secret(self, request, queryset):
        rotated = [source.name for source in queryset]
        for source in queryset:
            source.rotate_hook_secret()
        self.message_user(request, ngettext(
            "New hook URL for %(names)s: paste it into the form builder, the old one no longer works.",
            "New hook URLs for %(names)s: paste them into the form builders, the old ones no longer work.",
            len(rotated)) % {"names": ", ".join(rotated)}, messages.SUCCESS)

    @admin.display(description=_("hook URL and how to connect"))
    def hook_instructions(self, obj):
        if not obj or not obj.pk:
            return _("Save the source to get its hook URL.")
        return render_to_string("leads/hook_instructions.html", {
            "url": lead_source_hook_url(obj), "rate": settings.LEAD_HOOK_THROTTLE})

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        recent_lead_counts(list(changelist.result_list))
        return changelist

    @admin.display(description=_("leads, 30 days"))
    def lead_count(self, obj):
        return getattr(obj, "recent_leads", "—")

    @admin.display(description=_("deal fields of this account"))
    def deal_fields_hint(self, obj):
        if not obj or not obj.pk:
            return _("Save the source first.")
        fields = CustomField.objects.filter(account_id=obj.account_id, entity_type="leads").exclude(
            type="tracking_data")
        if not fields:
            return _("No cached deal fields: run “Sync metadata” on the account.")
        return format_html_join(", ", "{} <small>({}, id {})</small>",
                                ((f.name, f.type, f.amocrm_id) for f in fields))

    @admin.display(description=_("deal name preview"))
    def deal_name_preview(self, obj):
        lead = deal_names.last_real_lead(obj)
        if lead is None:
            return _("No lead from this source yet: the preview uses its last real lead.")
        when = f"{timezone.localtime(lead.created_at):%Y-%m-%d %H:%M}"
        return format_html('<strong>{}</strong> <small>({})</small>', deal_name(lead, obj),
                           _("from the lead of %(when)s") % {"when": when})

    @admin.display(description=_("embed snippet"))
    def embed_snippet(self, obj):
        if not obj or not obj.pk:
            return _("Save the source to get its snippet.")
        endpoint = settings.SITE_URL + reverse("lead-intake")
        snippet = render_to_string("leads/embed_snippet.html", {
            "source": obj, "endpoint": endpoint, "honeypot": HONEYPOT_FIELD, "tracker_url": tracker_url(),
        })
        return format_html(
            '<p>{}</p><textarea readonly rows="24" style="width:100%;font-family:monospace">{}</textarea>',
            _("Paste into the site’s page. Add the site’s origin to “Allowed origins” above."), snippet.strip())


# ============================================================================ leads


def lead_reason(lead: Lead):
    """The plain-words reason a lead is pending or failed, and when it is tried next ("—" when sent)."""
    if lead.status in (Lead.Status.SENT, Lead.Status.SPAM) and not lead.last_error:
        return "—"
    parts = []
    if lead.status == Lead.Status.PENDING and lead.account.sending_paused:
        parts.append(str(_("Paused: sending is paused for this account; the lead waits until it is resumed.")))
    elif lead.last_error:
        parts.append(str(error_messages.explain(lead.last_error).what))
    elif lead.status == Lead.Status.PENDING:
        parts.append(str(_("Waiting to be sent.")))
    if lead.status == Lead.Status.PENDING and lead.next_attempt_at and lead.next_attempt_at > timezone.now():
        parts.append(str(_("Next try at %(when)s.") % {
            "when": f"{timezone.localtime(lead.next_attempt_at):%Y-%m-%d %H:%M}"}))
    return format_html('<span title="{}">{}</span>', lead.last_error, " ".join(parts))


@admin.register(Lead)
class LeadAdmin(names.NameColumns, ModelAdmin):
    list_display = ["created_at", "status_badge", "reason", "source", "name", "phone", "email", "utm_source",
                    "utm_campaign", "deal_link", "stage_display", "manager_display", "sent_at", "attempts"]
    list_filter = ["status", "source", names.PipelineFilter, names.StageFilter, names.ManagerFilter,
                   ("created_at", admin.DateFieldListFilter), UtmSourceFilter, UtmCampaignFilter]
    search_fields = ["name", "phone", "email", "amocrm_deal_id"]  # searched by get_search_results
    search_help_text = SEARCH_HELP
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_select_related = ["source", "account"]
    date_hierarchy = "created_at"
    actions = ["action_retry_push", "action_mark_spam"]
    fieldsets = [
        (None, {"fields": ["id", "status_badge", "source", "account", "created_at", "sent_at", "attempts",
                           "next_attempt_at", "last_error_explained"]}),
        ("amoCRM", {"fields": ["deal_link", "attached_to_deal", "contact_display", "amocrm_unsorted_uid",
                               "note_pending", "task_pending", "write_attempted_at", "pipeline_display",
                               "stage_display", "manager_display", "stage_changed_at"]}),
        (_("Contact"), {"fields": ["name", "phone", "phone_raw", "email", "message", "price", "company"]}),
        (_("Attribution"), {"fields": ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                                    "referrer", "page_url", *ATTRIBUTION_FIELDS, "fields_pretty"]}),
        (_("Request"), {"fields": ["ip", "user_agent", "idempotency_key"]}),
        (_("Sync log"), {"fields": ["sync_log_table"]}),
    ]

    def get_queryset(self, request):
        return with_cheap_dates(names.with_names(super().get_queryset(request).defer(*LIST_DEFERRED)))

    def get_search_results(self, request, queryset, search_term):
        return lead_search(queryset, search_term), False

    def get_readonly_fields(self, request, obj=None):
        return [name for fieldset in self.fieldsets for name in fieldset[1]["fields"]]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The list's actions need change permission; a lead itself is a read-only record.
        return obj is None and super().has_change_permission(request)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span title="{}" style="background:{};color:#fff;padding:2px 8px;border-radius:10px;'
            'white-space:nowrap">{}</span>',
            obj.last_error, LEAD_BADGES.get(obj.status, "#6c757d"), obj.get_status_display())

    @admin.display(description=_("deal"), ordering="amocrm_deal_id")
    def deal_link(self, obj):
        if not obj.amocrm_deal_id:
            return "—"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>',
                           obj.account.deal_url(obj.amocrm_deal_id), obj.amocrm_deal_id)

    @admin.display(description=_("amoCRM contact"))
    def contact_display(self, obj):
        return names.contact_link(obj.account, obj.amocrm_contact_id, obj.name)

    @admin.display(description=_("why / next try"))
    def reason(self, obj):
        """Why a lead is not sent (yet), in plain words, and when it is tried again."""
        return lead_reason(obj)

    @admin.display(description=_("last error"))
    def last_error_explained(self, obj):
        return error_messages.render(obj.last_error)

    @admin.display(description=_("fields"))
    def fields_pretty(self, obj):
        return pretty_json(obj.fields)

    @admin.display(description=_("amoCRM calls for this lead"))
    def sync_log_table(self, obj):
        logs = obj.sync_logs.order_by("created_at", "id")
        if not logs:
            return "—"
        rows = format_html_join(
            "", "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((reverse("admin:amocrm_synclog_change", args=[log.pk]), f"{log.created_at:%Y-%m-%d %H:%M:%S}",
              log.operation, log.get_status_display(), log.http_status or "—",
              f"{log.duration_ms} ms" if log.duration_ms is not None else "—",
              error_messages.render(log.error[:500], http_status=log.http_status) if log.error else "")
             for log in logs),
        )
        heads = format_html_join("", "<th>{}</th>", ((head,) for head in (
            _("time"), _("operation"), _("status"), "HTTP", _("duration"), _("error"))))
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", heads, rows)

    @admin.action(description=_("Retry push"), permissions=["change"])
    def action_retry_push(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True))
        count = actions.lead_retry(lead_ids=selected)
        self.message_user(request, ngettext("%(count)d lead(s) queued to push again.",
                                            "%(count)d lead(s) queued to push again.", count) % {"count": count},
                          messages.SUCCESS)
        skipped = len(selected) - count
        if skipped:
            self.message_user(request, ngettext("%(count)d lead(s) skipped: already sent or being sent.",
                                                "%(count)d lead(s) skipped: already sent or being sent.",
                                                skipped) % {"count": skipped}, messages.WARNING)

    @admin.action(description=_("Mark as spam"), permissions=["change"])
    def action_mark_spam(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True))
        count = actions.lead_mark_spam(lead_ids=selected)
        self.message_user(request, ngettext("%(count)d lead(s) marked as spam; they will not be pushed.",
                                            "%(count)d lead(s) marked as spam; they will not be pushed.",
                                            count) % {"count": count}, messages.SUCCESS)
        skipped = len(selected) - count
        if skipped:
            self.message_user(request, ngettext("%(count)d lead(s) skipped: already in amoCRM or being sent.",
                                                "%(count)d lead(s) skipped: already in amoCRM or being sent.",
                                                skipped) % {"count": skipped}, messages.WARNING)
