"""Admin for what happened: the sync log and the webhook deliveries, read-only, with Reprocess for deliveries."""

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db import connection
from django.db.models.expressions import RawSQL
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.admin_filters import recent_values_filter
from config.admin_paging import EstimatedCountPaginator, with_cheap_dates

from .. import error_messages
from ..models import SyncLog, WebhookEvent
from ..webhooks.processing import webhook_event_reprocess
from .helpers import ReadOnlyAdmin, pretty_json, scrub

# The operations amoCRM calls are logged under (amocrm/client.py and the webhook processing): offered by the
# operation filter even when none of the newest rows has them.
SYNC_LOG_OPERATIONS = (
    "account.get", "contacts.search", "custom_fields.list", "leads.complex", "leads.get", "leads.list",
    "notes.create", "oauth.exchange_code", "oauth.refresh", "pipelines.list", "reconcile.deal",
    "unsorted.create", "users.list", "webhook.process", "webhooks.list", "webhooks.subscribe",
    "webhooks.unsubscribe",
)
OperationFilter = recent_values_filter("operation", title=_("operation"), newest_first="-created_at",
                                       known_values=SYNC_LOG_OPERATIONS)
# "entity.action" of each event in a delivery, computed by PostgreSQL from the parsed JSON of the rows on the
# page only: the list never loads bodies or parsed JSON into Python (a 250-deal delivery is ~0.5 MB of both).
EVENTS_SUMMARY_SQL = """
    SELECT string_agg(entity.key || '.' || action, ', ')
    FROM jsonb_each(CASE WHEN jsonb_typeof(amocrm_webhookevent.parsed) = 'object'
                         THEN amocrm_webhookevent.parsed ELSE '{}'::jsonb END) AS entity
    CROSS JOIN LATERAL jsonb_object_keys(CASE WHEN jsonb_typeof(entity.value) = 'object'
                                              THEN entity.value ELSE '{}'::jsonb END) AS action
    WHERE entity.key <> 'account'
"""
# Leads one call concerned (a batch is up to 50): shown by name on the call's page.
CONCERNS_SHOWN = 50


@admin.register(SyncLog)
class SyncLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "account", "operation", "status", "http_status", "duration_ms", "path"]
    list_filter = ["status", OperationFilter, "direction", "account", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["path", "error", "amocrm_request_id"]
    list_select_related = ["account"]
    date_hierarchy = "created_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    fields = ["created_at", "account", "operation", "direction", "status", "method", "path", "http_status",
              "duration_ms", "amocrm_request_id", "error_text", "concerns", "request_pretty", "response_pretty",
              "context_pretty"]
    readonly_fields = fields

    def get_queryset(self, request):
        # The list shows none of the bodies; the detail page loads them when it shows them.
        queryset = super().get_queryset(request).defer("request_body", "response_body", "context")
        return with_cheap_dates(queryset)

    @admin.display(description=_("error"))
    def error_text(self, obj):
        return error_messages.render(scrub(obj.error), http_status=obj.http_status)

    @admin.display(description=_("concerns"))
    def concerns(self, obj):
        """The leads, deal and webhook delivery this call was about, by name with a link, not as bare ids."""
        items = [format_html('<a href="{}">{} ({})</a>', reverse("admin:leads_lead_change", args=[lead.pk]),
                             str(lead), lead.pk) for lead in obj.leads.all()[:CONCERNS_SHOWN]]
        context = obj.context if isinstance(obj.context, dict) else {}
        if context.get("deal") and obj.account_id:
            items.append(format_html('<a href="{}" target="_blank" rel="noopener">{} #{}</a>',
                                     obj.account.deal_url(context["deal"]), _("deal"), context["deal"]))
        if context.get("webhook_event"):
            items.append(format_html('<a href="{}">{} #{}</a>', reverse(
                "admin:amocrm_webhookevent_change", args=[context["webhook_event"]]), _("webhook delivery"),
                context["webhook_event"]))
        return format_html_join(", ", "{}", ((item,) for item in items)) or "—"

    @admin.display(description=_("request (redacted)"))
    def request_pretty(self, obj):
        return pretty_json(obj.request_body)

    @admin.display(description=_("response (redacted)"))
    def response_pretty(self, obj):
        return pretty_json(obj.response_body)

    @admin.display(description=_("context"))
    def context_pretty(self, obj):
        return pretty_json(obj.context)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "account", "state", "summary", "remote_ip", "attempts", "processed_at"]
    list_filter = ["state", "account", ("received_at", admin.DateFieldListFilter)]
    list_select_related = ["account"]
    date_hierarchy = "received_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = ["action_reprocess"]
    fields = ["received_at", "account", "state", "error", "attempts", "processed_at", "remote_ip", "content_type",
              "headers_pretty", "body_pretty", "parsed_pretty"]
    readonly_fields = fields

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if connection.vendor == "postgresql":
            queryset = queryset.defer("body", "parsed", "headers", "item_errors").annotate(
                events_summary=RawSQL(EVENTS_SUMMARY_SQL, []))  # noqa: S611 (a constant, no input)
        return with_cheap_dates(queryset)

    @admin.display(description=_("events"))
    def summary(self, obj):
        if hasattr(obj, "events_summary"):
            return ", ".join((obj.events_summary or "").split(", ")[:5]) or "—"
        parsed = obj.parsed or {}
        names = [f"{entity}.{action}" for entity, actions in parsed.items() if entity != "account"
                 and isinstance(actions, dict) for action in actions]
        return ", ".join(names[:5]) or "—"

    @admin.display(description=_("headers"))
    def headers_pretty(self, obj):
        return pretty_json(obj.headers)

    @admin.display(description=_("raw body"))
    def body_pretty(self, obj):
        return format_html('<pre style="white-space:pre-wrap;word-break:break-all;max-width:70em">{}</pre>',
                           obj.body_text[:20000])

    @admin.display(description=_("parsed"))
    def parsed_pretty(self, obj):
        return pretty_json(obj.parsed)

    def has_reprocess_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('reprocess', opts)}")

    @admin.action(description=_("Reprocess"), permissions=["reprocess"])
    def action_reprocess(self, request, queryset):
        done = 0
        for event in queryset:
            webhook_event_reprocess(event_id=event.pk)
            done += 1
        self.message_user(request, gettext("%(count)d webhook event(s) queued for reprocessing.") % {"count": done},
                          messages.SUCCESS)
