"""`{% public_url 'intake:child' %}`: a link that stays on a school's own pages."""

from django import template
from django.urls import reverse

register = template.Library()


@register.simple_tag(takes_context=True)
def public_url(context, name: str) -> str:
    request = context.get("request")
    if request is None:
        return reverse(name)
    from cophub.intake.views import public_url as url_for_request

    return url_for_request(request, name)
