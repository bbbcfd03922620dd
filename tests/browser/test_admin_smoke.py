"""Smoke test of the browser setup: a superuser logs in to the admin (unfold's theme) in Chromium."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("locale", ["en-US", "ru-RU"])
def test_a_superuser_logs_in_and_sees_the_admin_index(live_server, admin_user, page, locale, screenshot):
    page_languages = []  # Accept-Language of every page the browser loads (what Django's locale follows)
    page.on("request", lambda request: request.resource_type == "document"
            and page_languages.append(request.headers.get("accept-language")))
    blocked = []  # what the Content-Security-Policy refused (Alpine.js needs 'unsafe-eval' on admin pages)
    page.on("console", lambda message: "Content Security Policy" in message.text and blocked.append(message.text))

    page.goto(f"{live_server.url}/admin/")
    assert page.url.startswith(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("form#login-form button[type=submit]")

    page.wait_for_url(f"{live_server.url}/admin/")
    sidebar = page.locator("#nav-sidebar-apps, nav").first
    assert sidebar.locator('a[href="/admin/leads/lead/"]').count() == 1
    assert sidebar.locator('a[href="/admin/amocrm/account/"]').count() == 1
    # The theme's stylesheet reached the browser (static files served by the live server) ...
    assert "Inter" in page.evaluate("getComputedStyle(document.body).fontFamily")
    # ... and Alpine.js started (it removes x-cloak from the page once it runs): the policy let it evaluate.
    page.wait_for_function("!document.documentElement.hasAttribute('x-cloak')")
    assert not blocked, blocked
    assert page.evaluate("navigator.language") == locale
    assert len(page_languages) == 4  # the index (redirected), the login form, its post, the index
    assert all(language.startswith(locale) for language in page_languages), page_languages
    screenshot(page)
