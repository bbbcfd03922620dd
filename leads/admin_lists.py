"""What the lead admin's lists need at volume: UTM filters from recent leads, sources' recent lead counts.

See leads/admin_search.py for the search itself and config/admin_paging.py for the counts and the date hierarchy.
"""

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.admin_filters import recent_values_filter

from .models import Lead

LEAD_COUNT_DAYS = timedelta(days=30)
# Long texts no list column shows (the detail page loads each one when it shows it).
LIST_DEFERRED = ("message", "fields", "referrer", "page_url", "user_agent")
SEARCH_HELP = _("A phone in any format or its last digits, an e-mail, an amoCRM deal id, or the start of a name.")

UtmSourceFilter = recent_values_filter("utm_source", title=_("UTM source"), newest_first="-created_at")
UtmCampaignFilter = recent_values_filter("utm_campaign", title=_("UTM campaign"), newest_first="-created_at")


def recent_lead_counts(sources) -> None:
    """Set `recent_leads` on each source: its leads of the last LEAD_COUNT_DAYS.

    One query on the created_at index for the sources of one page, not a join of every lead (a count over
    all leads grows with the table).
    """
    counts = dict(Lead.objects.filter(source__in=sources, created_at__gte=timezone.now() - LEAD_COUNT_DAYS)
                  .order_by().values("source").annotate(n=Count("pk")).values_list("source", "n"))
    for source in sources:
        source.recent_leads = counts.get(source.pk, 0)
