"""The console navigation's "Network filter" link: shown to IT administrators and administrators only.

An inclusion tag, so the link's words live in this app's catalog.
"""

from django import template

from cophub.netfilter import permissions

register = template.Library()


@register.inclusion_tag("netfilter/_nav_link.html", takes_context=True)
def netfilter_nav_link(context):
    """From the memberships already loaded with the user: no query per page."""
    return {"show": permissions.may_manage(context.get("user"))}
