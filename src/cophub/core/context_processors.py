from django.conf import settings
from functools import cache



def hub(request):
    """What every page shows: the hotlines and the counsellor to reach."""
    from cophub.alerts.services import unread_count
    from cophub.orgs.services import counsellor_contact, home_unit

    unit = getattr(request, "cophub_unit", None) or home_unit()
    context = {
        "hotline": settings.COPHUB_HOTLINE,
        "emergency": settings.COPHUB_EMERGENCY,
        "hub_unit": unit,
        "counsellor": counsellor_contact(unit),
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # The console's "Alerts" badge: templates call this, so the (indexed)
        # count runs only on pages that show it, and once per page.
        context["nav_unread_alerts"] = cache(lambda: unread_count(user))
        # The "Referrals" badge (referrals that could not be delivered) and the directory link: also only when shown.
        from cophub.referrals import services as referrals

        context["nav_failed_referrals"] = cache(lambda: referrals.failed_count(user))
        context["nav_can_manage_referral_targets"] = cache(lambda: referrals.may_manage_targets(user))
    return context
