"""manage.py amocrm_rotate_encryption: re-encrypt every stored secret with the newest FIELD_ENCRYPTION_KEY."""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.translation import gettext as _

from amocrm.crypto import EncryptedTextField


class Command(BaseCommand):
    help = (
        "Re-encrypt all encrypted fields with the first key in FIELD_ENCRYPTION_KEY. Rotation: put the new key "
        "first (keep the old one after it), deploy, run this command, then remove the old key."
    )

    def handle(self, *args, **opts):
        total = 0
        for model in apps.get_models():
            fields = [f.name for f in model._meta.get_fields() if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            count = 0
            with transaction.atomic():
                for obj in model._default_manager.select_for_update().only("pk", *fields).iterator():
                    # Reading decrypts with any listed key; saving encrypts with the first one.
                    model._default_manager.filter(pk=obj.pk).update(**{f: getattr(obj, f) for f in fields})
                    count += 1
            self.stdout.write(_("%(model)s: %(count)d rows re-encrypted") % {"model": model._meta.label,
                                                                             "count": count})
            total += count
        self.stdout.write(self.style.SUCCESS(_("Done: %(count)d rows.") % {"count": total}))
