"""URL map: landing page, admin, language switch, public API, OAuth callback, health, status and metrics, API docs."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from .health import healthz

urlpatterns = [
    # "View site" in the admin opens this page: what the product does and how to embed a form.
    path("", TemplateView.as_view(template_name="landing.html"), name="landing"),
    path("admin/", admin.site.urls),
    # POST language=ru|en: the admin header's language switcher (stored in the session and a cookie).
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz/", healthz, name="healthz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Split: the init script is a file of its own (?script=), so the page needs no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("amocrm.urls")),
    path("", include("leads.urls")),
    path("", include("monitoring.urls")),
]
