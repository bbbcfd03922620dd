"""Admin for lead sources (amoCRM placement chosen by name, the embed snippet) and leads (badges, retry, spam)."""

from urllib.parse import urlsplit

from django import forms
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
from amocrm.models import AmoUser, CustomField, Pipeline, Stage
from amocrm.values import to_int
from config.admin_paging import EstimatedCountPaginator, with_cheap_dates
from config.admin_widgets import ThemedFormMixin

from . import actions, deal_names
from .admin_lists import LIST_DEFERRED, SEARCH_HELP, UtmCampaignFilter, UtmSourceFilter, recent_lead_counts
from .admin_routing import ROUTING_FIELDS, RoutingFormMixin, mapping_parse
from .admin_search import lead_search
from .attribution import FIRST_TOUCH_COLUMNS, ID_FIELDS
from .intake.api import HONEYPOT_FIELD
from .models import Lead, LeadSource
from .payloads import deal_name
from .sources import lead_source_hook_url, normalize_origin

LEAD_BADGES = {
    Lead.Status.PENDING: "#b8860b",
    Lead.Status.SENDING: "#1f6feb",
    Lead.Status.SENT: "#1e7e34",
    Lead.Status.FAILED: "#c0392b",
    Lead.Status.SPAM: "#6c757d",
}
# The lead page's "Attribution" fieldset shows these after the last-touch UTMs (leads/attribution.py).
ATTRIBUTION_FIELDS = [*FIRST_TOUCH_COLUMNS.values(), *ID_FIELDS]


def _https_urls(db_field, **kwargs):
    # Django 6 makes https the default scheme of typed-in URLs; say so now.
    if isinstance(db_field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return db_field.formfield(**kwargs)


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


class LeadSourceForm(ThemedFormMixin, RoutingFormMixin, forms.ModelForm):
    """Pipeline, stage, responsible user and field mapping picked by name from the account's cached metadata."""

    pipeline_id = forms.TypedChoiceField(label=_("Pipeline"), coerce=int, empty_value=None, required=False)
    status_id = forms.TypedChoiceField(label=_("Stage"), coerce=int, empty_value=None, required=False,
                                       help_text=_("Empty: the pipeline's first stage."))
    responsible_user_id = forms.TypedChoiceField(label=_("Responsible user"), coerce=int, empty_value=None,
                                                 required=False)
    tags = forms.CharField(label=_("Tags"), required=False,
                           help_text=_("Comma-separated tags for every deal, e.g. site, landing."))
    allowed_origins = forms.CharField(
        label=_("Allowed origins"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One origin per line, e.g. https://example.com — the sites whose pages may post this form "
                    "from a browser. Server-to-server posts (no Origin header) are always accepted."))
    field_mapping = forms.CharField(
        label=_("Field mapping"), required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("One mapping per line: form field → amoCRM deal field (its name or id), e.g. "
                    "“city: Город”. Form fields are the keys of `fields`, or name, message, page_url, utm_…, "
                    "click ids (gclid, yclid, …) and the first touch (first_utm_source, first_landing_page, …)"))

    class Meta:
        model = LeadSource
        fields = ["name", "account", "is_active", "mode", "pipeline_id", "status_id", "responsible_user_id",
                  "deal_name_template", "tags", "field_mapping", "allowed_origins", "success_url", "error_url",
                  "form_id", "hook_preset", "hook_aliases", *ROUTING_FIELDS]
        formfield_callback = _https_urls

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        account_id = self.instance.account_id or to_int(self.data.get("account")) or to_int(
            self.initial.get("account"))
        multi = account_id is None
        pipelines = Pipeline.objects.select_related("account").order_by("account__name", "sort", "amocrm_id")
        # Won (142) and lost (143) close a deal: never the stage a new lead starts in.
        stages = Stage.objects.exclude(amocrm_id__in=[142, 143]).select_related(
            "pipeline", "pipeline__account").order_by("pipeline__account__name", "pipeline__sort", "sort")
        users = AmoUser.objects.select_related("account").order_by("account__name", "name")
        if not multi:
            pipelines = pipelines.filter(account_id=account_id)
            stages = stages.filter(pipeline__account_id=account_id)
            users = users.filter(account_id=account_id)

        def label(obj_account, text):
            return f"{obj_account.name}: {text}" if multi else text

        self.fields["pipeline_id"].choices = [("", _("— the account's default pipeline —"))] + [
            (p.amocrm_id, label(p.account, p.name + (" (main)" if p.is_main else ""))) for p in pipelines]
        grouped: dict[str, list] = {}
        for stage in stages:
            grouped.setdefault(label(stage.pipeline.account, stage.pipeline.name), []).append(
                (stage.amocrm_id, stage.name))
        self.fields["status_id"].choices = [("", _("— first stage —"))] + list(grouped.items())
        self.fields["responsible_user_id"].choices = [("", _("— the account's default user —"))] + [
            (u.amocrm_id, label(u.account, u.name)) for u in users]
        # Keep a stored id the cache no longer knows, instead of silently dropping it on save.
        for name in ("pipeline_id", "status_id", "responsible_user_id"):
            current = getattr(self.instance, name)
            known = {str(value) for value, _ in _flat_choices(self.fields[name].choices)}
            if current and str(current) not in known:
                self.fields[name].choices.append((current, f"#{current} (not in the cached amoCRM metadata)"))
        if self.instance.pk:
            self.initial["tags"] = ", ".join(self.instance.tags or [])
            self.initial["allowed_origins"] = "\n".join(self.instance.allowed_origins or [])
            names = {f.amocrm_id: f.name for f in CustomField.objects.filter(account_id=self.instance.account_id,
                                                                                 entity_type="leads")}
            self.initial["field_mapping"] = "\n".join(
                f"{key}: {names.get(to_int(value), value)}" for key, value in
                (self.instance.field_mapping or {}).items())
        self._account_id = account_id
        if "deal_name_template" in self.fields:  # absent from a view-only user's (read-only) form
            self.fields["deal_name_template"].help_text = deal_names.HELP
        self.routing_init(account_id)

    def clean_tags(self):
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]

    def clean_hook_aliases(self):
        aliases = self.cleaned_data.get("hook_aliases") or {}
        if not isinstance(aliases, dict) or not all(
                isinstance(key, str) and isinstance(value, str) and key.strip() and value.strip()
                for key, value in aliases.items()):
            raise forms.ValidationError(_('Write a JSON object of the sender\'s field name → ours, e.g. '
                                          '{"Ваше имя": "name", "Город": "city"}.'))
        return {key.strip(): value.strip() for key, value in aliases.items()}

    def clean_allowed_origins(self):
        origins = []
        for line in self.cleaned_data["allowed_origins"].splitlines():
            line = line.strip()
            if not line:
                continue
            parts = urlsplit(line)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
                    or parts.query or parts.fragment:
                raise forms.ValidationError(f"{line!r} is not an origin: write scheme and host only, "
                                            "e.g. https://example.com")
            origins.append(normalize_origin(f"{parts.scheme}://{parts.netloc}"))
        return list(dict.fromkeys(origins))

    def clean_field_mapping(self):
        account_id = to_int(self.data.get("account")) or self._account_id
        fields = list(CustomField.objects.filter(account_id=account_id, entity_type="leads")
                      .exclude(type="tracking_data"))
        return mapping_parse(self.cleaned_data["field_mapping"], fields, entity="deal")

    def clean(self):
        cleaned = super().clean()
        if "deal_name_template" in cleaned:
            known = deal_names.known_form_fields(self.instance, mapped=cleaned.get("field_mapping") or {})
            problems = deal_names.template_problems(cleaned["deal_name_template"], form_fields=known)
            if problems:
                self.add_error("deal_name_template", [*problems, _("Available: %(names)s") % {
                    "names": deal_names.available(known)}])
        account = cleaned.get("account")
        pipeline_id, status_id = cleaned.get("pipeline_id"), cleaned.get("status_id")
        if account is None:
            return cleaned
        if pipeline_id and not Pipeline.objects.filter(account=account, amocrm_id=pipeline_id).exists() \
                and pipeline_id != self.instance.pipeline_id:
            self.add_error("pipeline_id", "This pipeline belongs to another account.")
        if status_id:
            target = pipeline_id or account.default_pipeline_id
            if not target:
                self.add_error("status_id", "Choose the pipeline of this stage.")
            elif not Stage.objects.filter(pipeline__account=account, pipeline__amocrm_id=target,
                                          amocrm_id=status_id).exists() and status_id != self.instance.status_id:
                self.add_error("status_id", "This stage is not in the chosen pipeline.")
        user_id = cleaned.get("responsible_user_id")
        if user_id and not AmoUser.objects.filter(account=account, amocrm_id=user_id).exists() \
                and user_id != self.instance.responsible_user_id:
            self.add_error("responsible_user_id", "This user belongs to another account.")
        return cleaned


def _flat_choices(choices):
    for value, text in choices:
        if isinstance(text, list | tuple):
            yield from text
        else:
            yield value, text


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
            '<p>Paste into the site’s page. Add the site’s origin to “Allowed origins” above.</p>'
            '<textarea readonly rows="24" style="width:100%;font-family:monospace">{}'
            '</textarea>', snippet.strip())


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
class LeadAdmin(ModelAdmin):
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

    @admin.display(description=_("pipeline"), ordering="_pipeline_name")
    def pipeline_display(self, obj):
        return names.shown(obj._pipeline_name, obj.pipeline_id)

    @admin.display(description=_("stage"), ordering="_stage_name")
    def stage_display(self, obj):
        return names.shown(obj._stage_name, obj.stage_id)

    @admin.display(description=_("manager"), ordering="_user_name")
    def manager_display(self, obj):
        return names.shown(obj._user_name, obj.responsible_user_id)

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
        return format_html("<table><thead><tr><th>time</th><th>operation</th><th>status</th><th>HTTP</th>"
                           "<th>duration</th><th>error</th></tr></thead><tbody>{}</tbody></table>", rows)

    @admin.action(description=_("Retry push"), permissions=["change"])
    def action_retry_push(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True))
        count = actions.lead_retry(lead_ids=selected)
        self.message_user(request, f"{count} lead(s) queued to push again.", messages.SUCCESS)
        if count < len(selected):
            self.message_user(request, f"{len(selected) - count} lead(s) skipped: already sent or being sent.",
                              messages.WARNING)

    @admin.action(description=_("Mark as spam"), permissions=["change"])
    def action_mark_spam(self, request, queryset):
        selected = list(queryset.values_list("pk", flat=True))
        count = actions.lead_mark_spam(lead_ids=selected)
        self.message_user(request, f"{count} lead(s) marked as spam; they will not be pushed.", messages.SUCCESS)
        if count < len(selected):
            self.message_user(request, f"{len(selected) - count} lead(s) skipped: already in amoCRM or being sent.",
                              messages.WARNING)
