"""Deal name templates: the placeholders every lead offers, the check made when a source is saved, the preview.

A template is Python's str.format syntax over the lead: `{name}`, `{phone}`, `{utm_campaign}` …
and the form's own fields as `{fields[city]}`. The push never fails on a template (an unknown
value is blank, a broken template falls back to the default name); the source form refuses a
template with an unknown placeholder instead, listing the ones available, so the operator learns
it when saving rather than from odd deal names.
"""

import re
import string

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

# Placeholder → the lead attribute it reads (None: computed in template_values).
PLACEHOLDERS = {
    "name": None, "phone": "phone", "phone_raw": "phone_raw", "email": "email", "message": "message",
    "source": None, "utm_source": "utm_source", "utm_medium": "utm_medium", "utm_campaign": "utm_campaign",
    "utm_term": "utm_term", "utm_content": "utm_content", "referrer": "referrer", "page_url": "page_url",
}
FIELD_KEY = re.compile(r"^\[([^\[\]]+)\]$")
RECENT_LEADS = 50
HELP = _("Placeholders: {name}, {phone}, {email}, {message}, {source}, {utm_source}, {utm_medium}, "
         "{utm_campaign}, {utm_term}, {utm_content}, {referrer}, {page_url}, {phone_raw}, and the form's own "
         "fields as {fields[city]}.")


class Blank(dict):
    """Missing keys format as empty text: a lead without a value gives a shorter name, not an error."""

    def __missing__(self, key):
        return ""


def template_values(lead, source) -> Blank:
    values = Blank({key: getattr(lead, attribute) or "" for key, attribute in PLACEHOLDERS.items() if attribute})
    values["name"] = lead.name or lead.phone or lead.email
    values["source"] = source.name
    fields = lead.fields if isinstance(lead.fields, dict) else {}  # a stored row may hold anything JSON
    values["fields"] = Blank({str(key): "" if value is None else str(value) for key, value in fields.items()})
    return values


def known_form_fields(source, *, mapped=()) -> set[str]:
    """Form fields this source is known to send: the mapped ones and those of its recent leads."""
    known = {str(key) for key in mapped}
    if source is not None and source.pk:
        for fields in source.leads.order_by("-created_at").values_list("fields", flat=True)[:RECENT_LEADS]:
            known.update(str(key) for key in (fields if isinstance(fields, dict) else {}))
    return known


def last_real_lead(source):
    """The source's newest lead that is not spam (the preview's), or None."""
    if source is None or not source.pk:
        return None
    return source.leads.exclude(status="spam").order_by("-created_at").first()


def available(form_fields: set[str]) -> str:
    names = [f"{{{name}}}" for name in PLACEHOLDERS] + [f"{{fields[{key}]}}" for key in sorted(form_fields)]
    return ", ".join(names)


def template_problems(template: str, *, form_fields: set[str]) -> list[str]:
    """What is wrong with a template, in plain words (empty: nothing)."""
    try:
        parsed = list(string.Formatter().parse(template or ""))
    except ValueError:
        return [gettext("The braces do not match. Write a placeholder as {name}; a brace itself as {{ or }}.")]
    problems = []
    for _literal, field, _spec, _conversion in parsed:
        if field is None:
            continue
        root = re.split(r"[.\[]", field, maxsplit=1)[0]
        rest = field[len(root):]
        if root == "fields":
            match = FIELD_KEY.match(rest)
            if not match:
                problems.append(gettext("“{%(field)s}”: write a form field as {fields[city]}.") % {"field": field})
            elif match.group(1) not in form_fields:
                problems.append(gettext("“{%(field)s}”: this source's form has sent no field “%(key)s” yet (and it "
                                        "is not in the field mapping).") % {"field": field, "key": match.group(1)})
        elif root not in PLACEHOLDERS or rest:
            problems.append(gettext("“{%(field)s}” is not a placeholder.") % {"field": field})
    if not problems:
        try:
            template.format_map(Blank({**dict.fromkeys(PLACEHOLDERS, "x"), "fields": Blank()}))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            # What is left to fail is a format spec or conversion ({name:%}, {name!z}): Python's own
            # words for it ("Unknown format code '%' for object of type 'str'") tell an operator nothing.
            problems.append(gettext("The template cannot be filled in: a placeholder has a format or conversion "
                                    "(after “:” or “!”) its value does not take. Write it without one, "
                                    "e.g. {name}."))
    return problems

