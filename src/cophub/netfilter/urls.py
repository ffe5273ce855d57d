"""The network filter's console pages, mounted at /console/network-filter/ (namespace `netfilter`) by cophub/urls.py.

The public "this is a mistake" form is in the root urls (views_public.py).
"""

from django.urls import path

from . import views

app_name = "netfilter"
urlpatterns = [
    path("", views.dashboard_view, name="dashboard"),
    path("lists/", views.lists_view, name="lists"),
    path("lists/subscribe/", views.list_subscribe_view, name="list_subscribe"),
    path("lists/upload/", views.list_upload_view, name="list_upload"),
    path("lists/<int:pk>/", views.list_detail_view, name="list"),
    path("lists/<int:pk>/enabled/", views.list_toggle_view, name="list_toggle"),
    path("lists/<int:pk>/refresh/", views.list_refresh_view, name="list_refresh"),
    path("lists/<int:pk>/delete/", views.list_delete_view, name="list_delete"),
    path("groups/", views.groups_view, name="groups"),
    path("groups/new/", views.group_new_view, name="group_new"),
    path("groups/<int:pk>/", views.group_edit_view, name="group_edit"),
    path("groups/<int:pk>/delete/", views.group_delete_view, name="group_delete"),
    path("unblocks/", views.unblocks_view, name="unblocks"),
    path("unblocks/<int:pk>/revoke/", views.unblock_revoke_view, name="unblock_revoke"),
    path("settings/", views.settings_view, name="settings"),
    path("log/", views.log_view, name="log"),
    path("mistakes/", views.mistakes_view, name="mistakes"),
    path("mistakes/<int:pk>/", views.mistake_decide_view, name="mistake_decide"),
]
