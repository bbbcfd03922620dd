"""Signal receivers: a default source and a push when an account connects or resumes sending; source cache upkeep."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from amocrm.sending import sending_resumed
from amocrm.services import account_connected

from .models import LeadSource
from .push.schedule import lead_schedule_push
from .sources import lead_source_cache_clear, lead_source_ensure_default


@receiver(account_connected, dispatch_uid="leads.receivers.on_account_connected")
def on_account_connected(sender, account, **kwargs) -> None:
    lead_source_ensure_default(account=account)
    # Leads that waited while the account needed re-authorization go now, not at the next sweep.
    lead_schedule_push(account_id=account.pk)


@receiver(sending_resumed, dispatch_uid="leads.receivers.on_sending_resumed")
def on_sending_resumed(sender, account, **kwargs) -> None:
    # The leads that waited while sending was paused go now, not at the next sweep.
    lead_schedule_push(account_id=account.pk)


@receiver(post_save, sender=LeadSource, dispatch_uid="leads.receivers.source_saved")
@receiver(post_delete, sender=LeadSource, dispatch_uid="leads.receivers.source_deleted")
def on_source_changed(sender, **kwargs) -> None:
    lead_source_cache_clear()
