"""Smoke test of the browser setup: a superuser logs in to the Django admin in Chromium."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("locale", ["en-US", "ru-RU"])
def test_a_superuser_logs_in_and_sees_the_admin_index(live_server, admin_user, page, locale, screenshot):
    page_languages = []  # Accept-Language of every page the browser loads (what Django's locale follows)
    page.on("request", lambda request: request.resource_type == "document"
            and page_languages.append(request.headers.get("accept-language")))

    page.goto(f"{live_server.url}/admin/")
    assert page.url.startswith(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")

    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.locator("#user-tools strong").text_content() == "admin"
    assert page.locator('#content-main th a[href="/admin/leads/lead/"]').count() == 1
    assert page.locator('#content-main th a[href="/admin/amocrm/account/"]').count() == 1
    # The page's own stylesheet reached the browser (static files served by the live server).
    assert page.evaluate("getComputedStyle(document.getElementById('header')).display") == "flex"
    assert page.evaluate("navigator.language") == locale
    assert len(page_languages) == 4  # the index (redirected), the login form, its post, the index
    assert all(language.startswith(locale) for language in page_languages), page_languages
    screenshot(page)
