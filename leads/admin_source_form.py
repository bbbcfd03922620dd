"""The lead source's admin form: amoCRM placement chosen by name, mappings read by name, templates checked on save."""

from urllib.parse import urlsplit

from django import forms
from django.db import models
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _

from amocrm.models import AmoUser, CustomField, Pipeline, Stage
from amocrm.values import to_int
from config.admin_widgets import ThemedFormMixin

from . import deal_names
from .admin_routing import ROUTING_FIELDS, RoutingFormMixin, mapping_parse
from .models import LeadSource
from .sources import normalize_origin


def _https_urls(db_field, **kwargs):
    # Django 6 makes https the default scheme of typed-in URLs; say so now.
    if isinstance(db_field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return db_field.formfield(**kwargs)


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
            (p.amocrm_id, label(p.account, p.name + (gettext(" (main)") if p.is_main else ""))) for p in pipelines]
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
                self.fields[name].choices.append((current, gettext("#%(id)s (not in the cached amoCRM metadata)")
                                                   % {"id": current}))
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
                raise forms.ValidationError(gettext("%(line)r is not an origin: write scheme and host only, "
                                                    "e.g. https://example.com") % {"line": line})
            origins.append(normalize_origin(f"{parts.scheme}://{parts.netloc}"))
        return list(dict.fromkeys(origins))

    def clean_field_mapping(self):
        account_id = to_int(self.data.get("account")) or self._account_id
        fields = list(CustomField.objects.filter(account_id=account_id, entity_type="leads")
                      .exclude(type="tracking_data"))
        return mapping_parse(self.cleaned_data["field_mapping"], fields, entity=pgettext("a field of", "deal"))

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
            self.add_error("pipeline_id", gettext("This pipeline belongs to another account."))
        if status_id:
            target = pipeline_id or account.default_pipeline_id
            if not target:
                self.add_error("status_id", gettext("Choose the pipeline of this stage."))
            elif not Stage.objects.filter(pipeline__account=account, pipeline__amocrm_id=target,
                                          amocrm_id=status_id).exists() and status_id != self.instance.status_id:
                self.add_error("status_id", gettext("This stage is not in the chosen pipeline."))
        user_id = cleaned.get("responsible_user_id")
        if user_id and not AmoUser.objects.filter(account=account, amocrm_id=user_id).exists() \
                and user_id != self.instance.responsible_user_id:
            self.add_error("responsible_user_id", gettext("This user belongs to another account."))
        return cleaned


def _flat_choices(choices):
    for value, text in choices:
        if isinstance(text, list | tuple):
            yield from text
        else:
            yield value, text
