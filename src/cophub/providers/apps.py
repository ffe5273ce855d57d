from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ProvidersConfig(AppConfig):
    name = "cophub.providers"
    verbose_name = _("Content providers")
