"""Admin for the amoCRM metadata cached on connect: pipelines with their stages, users, deal custom fields."""

from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline

from ..models import AmoUser, CustomField, Pipeline, Stage


class StageInline(TabularInline):
    model = Stage
    extra = 0
    can_delete = False
    fields = ["amocrm_id", "name", "sort", "type"]
    readonly_fields = fields


@admin.register(Pipeline)
class PipelineAdmin(ModelAdmin):
    list_display = ["name", "account", "amocrm_id", "is_main", "stage_count"]
    list_filter = ["account"]
    inlines = [StageInline]
    readonly_fields = ["account", "amocrm_id", "name", "sort", "is_main", "is_archive"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_stages=Count("stages"))

    @admin.display(description=_("stages"))
    def stage_count(self, obj):
        return obj._stages

    def has_add_permission(self, request):
        return False


@admin.register(AmoUser)
class AmoUserAdmin(ModelAdmin):
    list_display = ["name", "email", "amocrm_id", "is_active", "account"]
    list_filter = ["account", "is_active"]
    readonly_fields = ["account", "amocrm_id", "name", "email", "is_active"]

    def has_add_permission(self, request):
        return False


@admin.register(CustomField)
class CustomFieldAdmin(ModelAdmin):
    list_display = ["name", "entity_type", "code", "type", "amocrm_id", "account"]
    list_filter = ["account", "entity_type", "type"]
    search_fields = ["name", "code"]
    readonly_fields = ["account", "entity_type", "amocrm_id", "name", "code", "type", "enums"]

    def has_add_permission(self, request):
        return False
