"""The benchmark's URLconf: the product's URLs plus `/bench/bare-insert/`, the baseline of bench/intake.py."""

from django.urls import include, path

from .views import bare_insert

urlpatterns = [
    path("bench/bare-insert/", bare_insert),
    path("", include("config.urls")),
]
