from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HashbanksConfig(AppConfig):
    name = "cophub.hashbanks"
    verbose_name = _("Hash lists")
