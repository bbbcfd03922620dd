"""`manage.py compile_catalogues`: compile the project's translation catalogues (.po → .mo) with Babel.

What `make install` and the Docker build run, so nobody has to remember it and no system package is needed
(Django's compilemessages calls gettext's msgfmt). A .mo is written only when its messages differ from its .po,
so a build on a checkout leaves the committed files alone.
"""

import gettext
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

SKIPPED_DIRS = {".venv", "node_modules", "var", ".git", "staticfiles"}


def catalogues(root: Path) -> list[Path]:
    """Every django.po under the project's locale directories (apps' and LOCALE_PATHS')."""
    return sorted(path for path in root.rglob("locale/*/LC_MESSAGES/django.po")
                  if not SKIPPED_DIRS & set(path.relative_to(root).parts))


def compiled(po: Path) -> bytes:
    with po.open("rb") as handle:
        catalog = read_po(handle)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


def messages_of(mo: bytes) -> dict:
    """The messages a .mo holds, as gettext reads them (header left out)."""
    return {key: value for key, value in gettext.GNUTranslations(io.BytesIO(mo))._catalog.items() if key != ""}


def is_current(po: Path, fresh: bytes) -> bool:
    mo = po.with_suffix(".mo")
    return mo.is_file() and messages_of(mo.read_bytes()) == messages_of(fresh)


class Command(BaseCommand):
    help = "Compile every translation catalogue of the project whose .mo is missing or out of date (Babel)."

    def handle(self, *args, **options):
        written = 0
        for po in catalogues(Path(settings.BASE_DIR)):
            fresh = compiled(po)
            if not is_current(po, fresh):
                po.with_suffix(".mo").write_bytes(fresh)
                written += 1
                if options["verbosity"] > 1:
                    self.stdout.write(str(po.with_suffix(".mo").relative_to(settings.BASE_DIR)))
        if options["verbosity"]:
            self.stdout.write(_("Catalogues compiled: %(count)d.") % {"count": written})
