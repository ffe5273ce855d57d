"""Console pages for content providers and their API keys, included by the console at /console/providers/.

No app_name of its own: the names live in the console's namespace (`console:providers`, `console:provider`, …).
"""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.provider_list_view, name="providers"),
    path("new/", views.provider_create_view, name="provider_create"),
    path("<int:pk>/", views.provider_detail_view, name="provider"),
    path("<int:pk>/active/", views.set_active_view, name="provider_set_active"),
    path("<int:pk>/keys/new/", views.issue_key_view, name="provider_issue_key"),
    path("<int:pk>/keys/<int:key_id>/rotate/", views.rotate_key_view, name="provider_rotate_key"),
    path("<int:pk>/keys/<int:key_id>/revoke/", views.revoke_key_view, name="provider_revoke_key"),
]
