"""The receiver of the upstream hubs' webhooks."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import services
from .models import Upstream


@csrf_exempt
@require_POST
def webhook(request, upstream_id: int):
    """Signed `report.state_changed` events; 2xx for accepted and already-seen events alike."""
    upstream = get_object_or_404(Upstream, pk=upstream_id, active=True)
    status = services.receive_event(upstream, request.headers, request.body)
    return HttpResponse(status=status)
