from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NetfilterConfig(AppConfig):
    name = "cophub.netfilter"
    verbose_name = _("School network filter")
    default_auto_field = "django.db.models.BigAutoField"
