"""Names for the amoCRM ids the admin shows and filters by: pipelines, stages and users from the cached metadata.

Every id is shown as "Name (id)". An id the cache does not know (metadata never synced, or the
pipeline was created in amoCRM since) is shown as the bare id with a hint to sync the metadata.
List pages get the names as per-row subqueries on the unique (account, id) indexes of the small
metadata tables, so a page of 100 rows costs no extra round trip and no query per row.
"""

from django.contrib import admin
from django.db.models import OuterRef, Subquery
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..models import AmoUser, Pipeline, Stage

WON, LOST = 142, 143
MISSING_HINT = _("not in the cached amoCRM metadata: run “Sync metadata” on the account")


def shown(name: str | None, amocrm_id: int | None):
    """"Name (id)"; the id with the "sync metadata" hint when the name is unknown; "—" for no id."""
    if amocrm_id is None:
        return "—"
    if name:
        return f"{name} ({amocrm_id})"
    return format_html('{} <small style="color:#b8860b" title="{}">({})</small>', amocrm_id, MISSING_HINT,
                       MISSING_HINT)


def contact_link(account, contact_id: int | None, name: str = ""):
    """The amoCRM contact as a link to its card, labelled with the person's name when known."""
    if not contact_id:
        return "—"
    url = f"{account.host}/contacts/detail/{contact_id}"
    return format_html('<a href="{}" target="_blank" rel="noopener">{} ({})</a>', url, name or _("contact"),
                       contact_id)


def pipeline_name(account_ref: str, pipeline_ref: str) -> Subquery:
    return Subquery(Pipeline.objects.filter(account_id=OuterRef(account_ref), amocrm_id=OuterRef(pipeline_ref))
                    .values("name")[:1])


def stage_name(account_ref: str, pipeline_ref: str, stage_ref: str) -> Subquery:
    return Subquery(Stage.objects.filter(pipeline__account_id=OuterRef(account_ref),
                                         pipeline__amocrm_id=OuterRef(pipeline_ref), amocrm_id=OuterRef(stage_ref))
                    .values("name")[:1])


def user_name(account_ref: str, user_ref: str) -> Subquery:
    return Subquery(AmoUser.objects.filter(account_id=OuterRef(account_ref), amocrm_id=OuterRef(user_ref))
                    .values("name")[:1])


def with_names(queryset, *, account: str = "account_id", pipeline: str = "pipeline_id", stage: str = "stage_id",
               user: str = "responsible_user_id"):
    """The queryset with `_pipeline_name`, `_stage_name` and `_user_name` (None when the cache lacks them)."""
    return queryset.annotate(_pipeline_name=pipeline_name(account, pipeline),
                             _stage_name=stage_name(account, pipeline, stage),
                             _user_name=user_name(account, user))


class NameColumns:
    """The pipeline, stage and manager columns of an admin whose queryset went through `with_names`."""

    @admin.display(description=_("pipeline"), ordering="_pipeline_name")
    def pipeline_display(self, obj):
        return shown(obj._pipeline_name, obj.pipeline_id)

    @admin.display(description=_("stage"), ordering="_stage_name")
    def stage_display(self, obj):
        return shown(obj._stage_name, obj.stage_id)

    @admin.display(description=_("manager"), ordering="_user_name")
    def manager_display(self, obj):
        return shown(obj._user_name, obj.responsible_user_id)


def account_names(account_id: int | None) -> dict:
    """{"pipelines": {id: name}, "stages": {(pipeline, stage): name}, "users": {id: name}} for one account page."""
    if account_id is None:
        return {"pipelines": {}, "stages": {}, "users": {}}
    return {
        "pipelines": dict(Pipeline.objects.filter(account_id=account_id).values_list("amocrm_id", "name")),
        "stages": {(p, s): name for p, s, name in Stage.objects.filter(pipeline__account_id=account_id)
                   .values_list("pipeline__amocrm_id", "amocrm_id", "name")},
        "users": dict(AmoUser.objects.filter(account_id=account_id).values_list("amocrm_id", "name")),
    }


# ---------------------------------------------------------------------------- list filters by name


class PipelineFilter(admin.SimpleListFilter):
    title = _("pipeline")
    parameter_name = "pipeline"
    field = "pipeline_id"

    def lookups(self, request, model_admin):
        seen = dict(Pipeline.objects.order_by("sort", "amocrm_id").values_list("amocrm_id", "name"))
        return [(str(pk), f"{name} ({pk})") for pk, name in seen.items()]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.field: int(value)}) if value and value.isdigit() else queryset


class StageFilter(admin.SimpleListFilter):
    """By "pipeline → stage", one choice per stage (stage ids repeat across pipelines: 142 and 143)."""

    title = _("stage")
    parameter_name = "stage"
    pipeline_field, stage_field = "pipeline_id", "stage_id"

    def lookups(self, request, model_admin):
        rows = Stage.objects.order_by("pipeline__sort", "pipeline__amocrm_id", "sort").values_list(
            "pipeline__amocrm_id", "pipeline__name", "amocrm_id", "name")
        choices = {f"{p}:{s}": f"{p_name} → {s_name}" for p, p_name, s, s_name in rows}
        return list(choices.items())

    def queryset(self, request, queryset):
        pipeline, _sep, stage = (self.value() or "").partition(":")
        if not (pipeline.isdigit() and stage.isdigit()):
            return queryset
        return queryset.filter(**{self.pipeline_field: int(pipeline), self.stage_field: int(stage)})


class ManagerFilter(admin.SimpleListFilter):
    title = _("manager")
    parameter_name = "manager"
    field = "responsible_user_id"

    def lookups(self, request, model_admin):
        seen = dict(AmoUser.objects.order_by("name").values_list("amocrm_id", "name"))
        return [(str(pk), name) for pk, name in seen.items()]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.field: int(value)}) if value and value.isdigit() else queryset
