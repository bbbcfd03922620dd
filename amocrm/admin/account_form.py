"""The account form: lead defaults (pipeline, stage, responsible user) and won stages chosen by name.

Choices come from the account's cached metadata. An id already stored that the cache does not
know stays selectable (shown with a "sync metadata" hint) rather than being dropped on save. Won
and lost stages (142, 143) are never offered as the stage incoming leads are put in.
"""

from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from config.admin_widgets import ThemedFormMixin

from ..models import Account, AmoUser, Pipeline, Stage
from .names import LOST, MISSING_HINT, WON

STAGE_SEPARATOR = ":"
NO_METADATA = _("Nothing to choose from yet: connect the account, or press “Sync metadata”.")


def _missing_label(amocrm_id) -> str:
    return f"{amocrm_id} ({MISSING_HINT})"


def _keep_unknown(field, current) -> None:
    """Append the stored value when no choice has it, so saving the form does not lose it."""
    if current in (None, ""):
        return
    known = set()
    for value, label in field.choices:
        known.update(str(v) for v, _label in label) if isinstance(label, list | tuple) else known.add(str(value))
    if str(current) not in known:
        field.choices = [*field.choices, (current, _missing_label(current))]


class AccountForm(ThemedFormMixin, forms.ModelForm):
    default_pipeline_id = forms.TypedChoiceField(
        label=_("Default pipeline"), coerce=int, empty_value=None, required=False,
        help_text=_("Where leads go when their source names no pipeline. Empty: the main pipeline."))
    default_status_id = forms.TypedChoiceField(
        label=_("Default stage"), coerce=int, empty_value=None, required=False,
        help_text=_("The stage new leads are put in. Empty: the pipeline's first stage. "
                    "Won and lost stages are not offered."))
    default_responsible_user_id = forms.TypedChoiceField(
        label=_("Default responsible user"), coerce=int, empty_value=None, required=False,
        help_text=_("The manager new deals are given to. Empty: amoCRM decides."))
    won_stages = forms.MultipleChoiceField(
        label=_("Won stages"), required=False, widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text=_("Deals reaching one of these stages count as sales. None chosen: the “won” stage (142) "
                    "of every pipeline."))

    class Meta:
        model = Account
        fields = ["name", "host", "client_id", "client_secret", "redirect_uri", "default_pipeline_id",
                  "default_status_id", "default_responsible_user_id", "won_stages"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        account_id = self.instance.pk
        pipelines = list(Pipeline.objects.filter(account_id=account_id).order_by("sort", "amocrm_id"))
        stages = list(Stage.objects.filter(pipeline__account_id=account_id).select_related("pipeline")
                      .order_by("pipeline__sort", "pipeline__amocrm_id", "sort", "amocrm_id"))
        users = AmoUser.objects.filter(account_id=account_id).order_by("name")
        self.fields["default_pipeline_id"].choices = [("", _("— main pipeline —"))] + [
            (p.amocrm_id, f"{p.name} ({p.amocrm_id})") for p in pipelines]
        incoming: dict[str, list] = {}
        won: dict[str, list] = {}
        for stage in stages:
            group = f"{stage.pipeline.name} ({stage.pipeline.amocrm_id})"
            if stage.amocrm_id not in (WON, LOST):
                incoming.setdefault(group, []).append((stage.amocrm_id, f"{stage.name} ({stage.amocrm_id})"))
            won.setdefault(group, []).append(
                (f"{stage.pipeline.amocrm_id}{STAGE_SEPARATOR}{stage.amocrm_id}", f"{stage.name} ({stage.amocrm_id})"))
        self.fields["default_status_id"].choices = [("", _("— first stage —"))] + list(incoming.items())
        self.fields["default_responsible_user_id"].choices = [("", _("— none —"))] + [
            (u.amocrm_id, f"{u.name} ({u.amocrm_id})") for u in users]
        self.fields["won_stages"].choices = list(won.items())
        for name in ("default_pipeline_id", "default_status_id", "default_responsible_user_id"):
            _keep_unknown(self.fields[name], getattr(self.instance, name))
        stored = [f"{p}{STAGE_SEPARATOR}{s}" for p, s in (self.instance.won_stages or [])]
        for value in stored:
            _keep_unknown(self.fields["won_stages"], value)
        self.initial["won_stages"] = stored
        self._stages = {(s.pipeline.amocrm_id, s.amocrm_id) for s in stages}
        if not pipelines:
            for name in ("default_pipeline_id", "default_status_id", "default_responsible_user_id", "won_stages"):
                self.fields[name].help_text = format_lazy("{} {}", self.fields[name].help_text, NO_METADATA)

    def clean_default_status_id(self):
        value = self.cleaned_data.get("default_status_id")
        if value in (WON, LOST):
            raise forms.ValidationError(_("Incoming leads cannot start in a won or lost stage: choose another one."))
        return value

    def clean_won_stages(self):
        pairs = []
        for value in self.cleaned_data.get("won_stages") or []:
            pipeline, _sep, stage = value.partition(STAGE_SEPARATOR)
            pairs.append([int(pipeline), int(stage)])
        return pairs

    def clean(self):
        cleaned = super().clean()
        pipeline, stage = cleaned.get("default_pipeline_id"), cleaned.get("default_status_id")
        if pipeline and stage and self._stages and (pipeline, stage) not in self._stages \
                and stage != self.instance.default_status_id:
            self.add_error("default_status_id", _("This stage is not in the chosen pipeline."))
        return cleaned
