"""Every Russian catalogue of the repository is complete and compiled: no untranslated or fuzzy message, a .mo that
says what its .po says, and the settings that let a Russian-speaking operator get them.

The .mo is compared by content, not by modification time: a fresh clone gives files whatever times the checkout
happened to write them in, while a message missing from (or different in) the .mo is exactly "the .po was edited
and not compiled".
"""

import gettext
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from django.conf import settings
from django.utils import translation

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {".venv", "node_modules", "var", ".git"}


def russian_catalogues() -> list[Path]:
    return sorted(path for path in ROOT.rglob("locale/ru/LC_MESSAGES/*.po")
                  if not SKIPPED_DIRS & set(path.relative_to(ROOT).parts))


CATALOGUES = russian_catalogues()


def read(path: Path):
    with path.open("rb") as handle:
        return read_po(handle, locale="ru")


def messages(catalog):
    """Every real message of the catalogue (the header left out)."""
    for message in catalog:
        if not message.id:
            continue
        yield message


def key(message) -> str:
    msgid = message.id[0] if message.pluralizable else message.id
    return f"{message.context}\x04{msgid}" if message.context else msgid


def test_the_repository_has_the_expected_russian_catalogues():
    found = {path.relative_to(ROOT).as_posix() for path in CATALOGUES}

    for app in ("amocrm", "leads", "sales", "monitoring"):
        assert f"{app}/locale/ru/LC_MESSAGES/django.po" in found
    assert "locale/ru/LC_MESSAGES/django.po" in found  # templates/ and config/


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_message_is_translated_and_not_fuzzy(path):
    catalog = read(path)
    untranslated, fuzzy = [], []
    for message in messages(catalog):
        strings = message.string if message.pluralizable else (message.string,)
        if not all(strings):
            untranslated.append(key(message))
        if message.fuzzy:
            fuzzy.append(key(message))

    assert not untranslated, f"{path}: untranslated messages {untranslated}"
    assert not fuzzy, f"{path}: fuzzy messages (check the translation, then drop the fuzzy flag) {fuzzy}"


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_the_compiled_catalogue_matches_its_source(path):
    compiled = path.with_suffix(".mo")
    assert compiled.is_file(), f"{compiled} is missing: run `make messages`"
    with compiled.open("rb") as handle:
        mo = gettext.GNUTranslations(handle)._catalog

    stale = []
    for message in messages(read(path)):
        if message.pluralizable:
            for index, string in enumerate(message.string):
                if mo.get((key(message), index)) != string:
                    stale.append(key(message))
        elif mo.get(key(message)) != message.string:
            stale.append(key(message))

    assert not stale, f"{compiled} is older than {path.name} (run `make messages`): {stale}"


def test_russian_and_english_are_offered():
    assert [code for code, _name in settings.LANGUAGES] == ["ru", "en"]
    assert "django.middleware.locale.LocaleMiddleware" in settings.MIDDLEWARE
    assert ROOT / "locale" in [Path(path) for path in settings.LOCALE_PATHS]


def test_the_admin_site_title_is_russian_under_the_russian_locale():
    from config.unfold import UNFOLD

    with translation.override("ru"):
        assert str(UNFOLD["SITE_HEADER"]) == "Интеграция с amoCRM"
    with translation.override("en"):
        assert str(UNFOLD["SITE_HEADER"]) == "amoCRM integration"


def test_the_build_compiles_a_missing_or_stale_catalogue_and_leaves_a_current_one_alone(tmp_path, settings):
    """`make messages` / the Docker build: `manage.py compile_catalogues` (Babel, no msgfmt needed)."""
    from django.core.management import call_command

    source = ROOT / "locale" / "ru" / "LC_MESSAGES" / "django.po"
    target = tmp_path / "app" / "locale" / "ru" / "LC_MESSAGES"
    target.mkdir(parents=True)
    (target / "django.po").write_bytes(source.read_bytes())
    settings.BASE_DIR = tmp_path

    call_command("compile_catalogues", verbosity=0)
    compiled = target / "django.mo"
    with compiled.open("rb") as handle:
        translations = gettext.GNUTranslations(handle)
    assert translations.gettext("amoCRM integration") == "Интеграция с amoCRM"
    assert translations.ngettext("After %(limit)s wrong password, log-ins for this user from your address are "
                                 "blocked.", "After %(limit)s wrong passwords, log-ins for this user from your "
                                 "address are blocked.", 21).startswith("После %(limit)s неверного пароля")

    written = compiled.stat().st_mtime_ns
    call_command("compile_catalogues", verbosity=0)
    assert compiled.stat().st_mtime_ns == written  # current: not rewritten

    (target / "django.po").write_text((target / "django.po").read_text().replace(
        'msgstr "Интеграция с amoCRM"', 'msgstr "Интеграция с amoCRM и сайтом"', 1))
    call_command("compile_catalogues", verbosity=0)
    with compiled.open("rb") as handle:
        assert gettext.GNUTranslations(handle).gettext("amoCRM integration") == "Интеграция с amoCRM и сайтом"
