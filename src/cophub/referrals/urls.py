"""The referral console pages, mounted at /console/referrals/ (namespace `referrals`) by cophub/urls.py.

The public callback endpoint for webhook recipients is in the root urls (views_public.py).
"""

from django.urls import path

from . import views

app_name = "referrals"
urlpatterns = [
    path("", views.list_view, name="list"),
    path("directory/", views.targets_view, name="targets"),
    path("directory/new/", views.target_new_view, name="target_new"),
    path("directory/<int:pk>/", views.target_edit_view, name="target_edit"),
    path("directory/<int:pk>/channels/new/", views.channel_add_view, name="channel_add"),
    path("directory/channels/<int:pk>/active/", views.channel_toggle_view, name="channel_toggle"),
    path("cases/<int:pk>/refer/", views.refer_view, name="refer"),
    path("cases/<int:pk>/takedown/", views.takedown_view, name="takedown"),
    path("<str:public_id>/letter.pdf", views.letter_view, name="letter"),
    path("<str:public_id>/respond/", views.respond_view, name="respond"),
    path("<str:public_id>/hand-delivered/", views.hand_delivered_view, name="hand_delivered"),
    path("<str:public_id>/retry/", views.retry_view, name="retry"),
    path("<str:public_id>/cancel/", views.cancel_view, name="cancel"),
]
