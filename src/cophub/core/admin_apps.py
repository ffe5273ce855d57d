"""The Django admin, installed with cophub's own site (see admin_site.py).

Kept apart from admin_site.py: this module is imported while apps are still
loading, before any model may be imported.
"""

from django.contrib.admin.apps import AdminConfig


class HubAdminConfig(AdminConfig):
    default_site = "cophub.core.admin_site.HubAdminSite"
