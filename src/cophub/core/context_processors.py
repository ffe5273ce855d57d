from django.conf import settings


def hub(request):
    """What every page shows: the hotlines and the counsellor to reach."""
    from cophub.orgs.services import counsellor_contact, home_unit

    unit = getattr(request, "cophub_unit", None) or home_unit()
    return {
        "hotline": settings.COPHUB_HOTLINE,
        "emergency": settings.COPHUB_EMERGENCY,
        "hub_unit": unit,
        "counsellor": counsellor_contact(unit),
    }
