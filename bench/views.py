"""The intake benchmark's baseline: a bare view doing one INSERT, routed only by bench/urls.py."""

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from leads.models import Lead, LeadSource

_source: list[LeadSource] = []


@csrf_exempt
def bare_insert(request):
    """Parse the JSON body, INSERT one lead for the first source, answer like the intake. Nothing else."""
    if not _source:
        _source.append(LeadSource.objects.order_by("pk").first())
    data = json.loads(request.body)
    lead = Lead.objects.create(source=_source[0], account_id=_source[0].account_id, name=data.get("name", ""),
                               phone=data.get("phone", ""), email=data.get("email", ""),
                               message=data.get("message", ""))
    return JsonResponse({"id": str(lead.id), "status": lead.status}, status=201)
