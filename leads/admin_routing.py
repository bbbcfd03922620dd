"""The lead source form's routing part: contact field mapping, round-robin users, repeat enquiries, the task.

A mixin for `LeadSourceForm` (admin.py), so the routing settings (leads/push/routing.py, dedup.py,
followups.py) are chosen by name from the account's cached users and contact fields.
"""

import re

from django import forms
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from amocrm.models import AmoUser, CustomField
from amocrm.values import to_int

from . import payloads

MAPPING_LINE = re.compile(r"^\s*([^:=→]+?)\s*(?::|=|→|->)\s*(.+?)\s*$")
ROUTING_FIELDS = ["contact_field_mapping", "dedup_policy", "dedup_days", "responsible_mode", "responsible_user_ids",
                  "task_enabled", "task_text", "task_due_minutes", "task_working_hours", "task_type_id"]


def mapping_parse(text: str, fields: list[CustomField], *, entity: str) -> dict[str, int]:
    """“form field: amoCRM field (name or id)” lines → {form field: field id}; a ValidationError says what to fix."""
    by_id = {str(f.amocrm_id): f for f in fields}
    by_name = {f.name.casefold(): f for f in fields}
    mapping = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        match = MAPPING_LINE.match(line)
        if not match:
            raise forms.ValidationError(gettext("%(line)r: write “form field: amoCRM field”.") % {"line": line})
        form_field, target = match.groups()
        found = by_id.get(target.lstrip("#")) or by_name.get(target.casefold())
        if found is None:
            known = ", ".join(f.name for f in fields) or gettext("none cached — sync the account's metadata")
            raise forms.ValidationError(gettext("%(target)r is not a %(entity)s field of this account (known: "
                                                "%(known)s).") % {"target": target, "entity": entity, "known": known})
        mapping[form_field] = found.amocrm_id
    return mapping


def mapping_text(mapping: dict, account_id: int | None) -> str:
    names = {f.amocrm_id: f.name for f in CustomField.objects.filter(account_id=account_id)}
    return "\n".join(f"{key}: {names.get(to_int(value), value)}" for key, value in (mapping or {}).items())


class RoutingFormMixin(forms.ModelForm):
    """Fields and checks of the routing settings; the form's __init__ calls `routing_init(account_id)`."""

    contact_field_mapping = forms.CharField(
        label=capfirst(_("contact field mapping")), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One mapping per line: form field → amoCRM contact field (its name or id), e.g. "
                    "“position: Должность”. Set on the contacts the push creates; values that do not fit "
                    "the field's type go into the note."))
    responsible_user_ids = forms.TypedMultipleChoiceField(
        label=capfirst(_("round-robin users")), coerce=int, required=False,
        help_text=_("With “round-robin”: new deals go to these users in turn; users inactive in amoCRM are "
                    "skipped. None active: the responsible user above."))

    def routing_init(self, account_id: int | None) -> None:
        # A post without them (an older form, a script) keeps the model's defaults: today's behaviour.
        for name in ("dedup_policy", "dedup_days", "responsible_mode", "task_due_minutes", "task_type_id"):
            if name in self.fields:  # a view-only user's form has none of the model's fields
                self.fields[name].required = False
        users = AmoUser.objects.select_related("account").order_by("account__name", "name")
        if account_id is not None:
            users = users.filter(account_id=account_id)
        self.fields["responsible_user_ids"].choices = [
            (user.amocrm_id, f"{user.name} ({user.amocrm_id})" + ("" if user.is_active else gettext(", inactive")))
            for user in users]
        if self.instance.pk:
            self.initial["contact_field_mapping"] = mapping_text(self.instance.contact_field_mapping,
                                                                 self.instance.account_id)

    def clean_contact_field_mapping(self):
        account_id = to_int(self.data.get("account")) or self._account_id
        fields = list(CustomField.objects.filter(account_id=account_id, entity_type="contacts")
                      .exclude(code__in=["PHONE", "EMAIL"]))
        return mapping_parse(self.cleaned_data["contact_field_mapping"], fields, entity=gettext("contact"))

    def clean_task_text(self):
        text = self.cleaned_data["task_text"]
        try:
            text.format_map({key: "" for key in ("name", "phone", "email", "company", "price", "source", "message")})
        except (ValueError, IndexError, AttributeError, KeyError, TypeError):
            raise forms.ValidationError(gettext(
                "Use only the placeholders {name}, {phone}, {email}, {company}, {price}, {source} and {message}, "
                "each in single braces.")) from None
        return text

    def clean_task_working_hours(self):
        text = self.cleaned_data["task_working_hours"].strip()
        if text and payloads.working_hours(text) is None:
            raise forms.ValidationError(gettext("Write the working hours as opening-closing, e.g. 09:00-18:00."))
        return text

    def clean_responsible_user_ids(self):
        users = self.cleaned_data["responsible_user_ids"]
        if self.data.get("responsible_mode") == "round_robin" and not users:
            raise forms.ValidationError(gettext("Choose the users of the round-robin."))
        return users
