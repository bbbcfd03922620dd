"""Content-Security-Policy on every page, and Swagger UI served from our own static files."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from tests.factories import make_account

pytestmark = pytest.mark.django_db

DOCS = "/api/docs/"
TEMPLATES = Path(settings.BASE_DIR) / "templates"
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
URL_ATTRIBUTE = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    parsed = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def assert_strict_policy(response, *, script_src=("'self'",)):
    policy = directives(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == list(script_src)
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    for name, sources in policy.items():
        for source in sources:
            assert "://" not in source and source not in ("*", "http:", "https:"), (name, source)


# --- Swagger UI ---------------------------------------------------------------------------------


def test_the_docs_page_references_no_outside_host_and_no_inline_script(client):
    response = client.get(DOCS)

    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    for url in URL_ATTRIBUTE.findall(html):
        assert url.startswith("/") and not url.startswith("//"), url
    assert not INLINE_SCRIPT.search(html)
    assert html.count("<script") == 3  # bundle, standalone preset, our init script


@pytest.fixture
def collected_static(settings, tmp_path):
    """Static files collected as the image build does (collectstatic, hashed names), served by whitenoise."""
    from django.core.management import call_command
    from django.test import Client

    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}}
    call_command("collectstatic", "--no-input", verbosity=0)
    return Client()  # a new client: whitenoise reads STATIC_ROOT when its middleware starts


def test_the_docs_assets_load_from_our_static_files(collected_static):
    client = collected_static
    html = client.get(DOCS).content.decode()
    urls = URL_ATTRIBUTE.findall(html)

    assert any(re.fullmatch(r"/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle\.[0-9a-f]{12}\.js",
                            url) for url in urls)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert body, url
    init = next(url for url in urls if "script=" in url)
    response = client.get(init)
    assert response["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in response.content
    assert b"/api/schema/" in response.content


def test_the_docs_page_has_the_policy(client):
    assert_strict_policy(client.get(DOCS))


def assert_admin_policy(response):
    """The strict policy plus 'unsafe-eval' in script-src (unfold's Alpine.js, config/csp.py): scripts still only
    from our origin, never inline, nothing else relaxed."""
    assert_strict_policy(response, script_src=("'self'", "'unsafe-eval'"))
    policy = directives(response)
    assert "'unsafe-inline'" not in policy["script-src"]
    assert policy["connect-src"] == ["'self'"] and policy["img-src"] == ["'self'", "data:"]


# --- The policy on every kind of page -------------------------------------------------------------


def test_the_admin_login_page_has_the_policy_and_still_logs_in(client, django_user_model):
    django_user_model.objects.create_superuser("op", "op@example.com", "pw-123456")
    page = client.get("/admin/login/")

    assert page.status_code == 200
    assert_admin_policy(page)
    assert not INLINE_SCRIPT.search(page.content.decode())
    response = client.post("/admin/login/?next=/admin/", {"username": "op", "password": "pw-123456"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert_admin_policy(client.get("/admin/"))


def test_the_oauth_result_page_has_the_policy(client):
    response = client.get("/amocrm/oauth/callback/", {"state": "forged", "code": "c"})

    assert response.status_code == 400
    assert_strict_policy(response)


def test_api_answers_carry_the_policy_too(client):
    assert_strict_policy(client.get("/api/schema/"))


def test_the_landing_page_keeps_the_strict_policy(client):
    response = client.get("/")

    assert response.status_code == 200
    assert_strict_policy(response)


def test_only_admin_paths_get_unsafe_eval(client):
    """A path that merely starts like the admin's, or a 404 elsewhere, keeps the strict policy."""
    assert_strict_policy(client.get("/administrator/"))
    assert_strict_policy(client.get("/healthz/"))
    assert_admin_policy(client.get("/admin/no-such-page/"))


@pytest.mark.parametrize("name, args", [
    ("admin:index", []),
    ("admin:amocrm_account_changelist", []),
    ("admin:amocrm_account_change", ["account"]),
    ("admin:amocrm_synclog_changelist", []),
    ("admin:amocrm_webhookevent_changelist", []),
    ("admin:leads_leadsource_change", ["source"]),
    ("admin:leads_lead_changelist", []),
    ("admin:sales_sale_changelist", []),
    ("admin:sales_sale_report", []),
])
def test_admin_pages_have_no_inline_script_and_no_outside_resource(admin_client, name, args):
    from leads.models import LeadSource

    account = make_account()
    source = LeadSource.objects.create(account=account, name="Site form")
    objects = {"account": account.pk, "source": source.pk}

    response = admin_client.get(reverse(name, args=[objects[arg] for arg in args]))

    assert response.status_code == 200
    assert_admin_policy(response)
    html = response.content.decode()
    assert not INLINE_SCRIPT.search(html)
    assert not INLINE_HANDLER.search(html)
    for url in URL_ATTRIBUTE.findall(html):
        # Links to amoCRM deals may leave the site; nothing the page loads does (checked by the policy).
        if url.startswith(("http://", "https://", "//")):
            assert not re.search(rf"""<(script|link|img|iframe)\b[^>]*\b(src|href)=["']{re.escape(url)}""", html), url


def test_no_template_runs_inline_script_or_loads_from_outside():
    """Templates rendered as pages: inline <script> and outside URLs would be blocked (or allowed) by the policy.

    leads/embed_snippet.html is not a page of ours: it is the form customers paste into their own
    site, shown escaped inside a textarea.
    """
    snippets = {TEMPLATES / "leads" / "embed_snippet.html"}
    pages = [path for path in TEMPLATES.rglob("*.html") if path not in snippets]

    assert pages
    for path in pages:
        text = path.read_text()
        assert not INLINE_SCRIPT.search(text), path
        assert not INLINE_HANDLER.search(text), path
        assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", text), path
