"""The staff console, mounted at /console/."""

from django.urls import include, path

from cophub.evidence import views as evidence_views
from cophub.evidence import wellbeing
from cophub.hashbanks import views as hashbank_views

from . import views

app_name = "console"
urlpatterns = [
    path("", views.queue_view, name="queue"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("two-factor/", views.otp_view, name="otp"),
    path("two-factor/enrol/", views.otp_enrol_view, name="otp_enrol"),
    path("entry/", views.entry_view, name="entry"),
    path("cases/<int:pk>/", views.case_view, name="case"),
    path("cases/<int:pk>/assign/", views.assign_view, name="assign"),
    path("cases/<int:pk>/transition/", views.transition_view, name="transition"),
    path("cases/<int:pk>/classify/", views.classify_view, name="classify"),
    path("cases/<int:pk>/note/", views.note_view, name="note"),
    path("cases/<int:pk>/message/", views.message_view, name="message"),
    path("cases/<int:pk>/merge/", views.merge_view, name="merge"),
    path("cases/<int:pk>/attach/", views.attach_view, name="attach"),
    path("cases/<int:pk>/evidence/<int:blob_id>/preview/", evidence_views.preview, name="evidence_preview"),
    path("cases/<int:pk>/evidence/<int:blob_id>/clear/", evidence_views.clear, name="evidence_clear"),
    path("cases/<int:pk>/evidence/<int:blob_id>/stream/", evidence_views.stream, name="evidence_stream"),
    path("cases/<int:pk>/evidence/<int:blob_id>/confirm/", hashbank_views.confirm_view, name="evidence_confirm"),
    path("cases/<int:pk>/evidence/<int:blob_id>/withdraw/", hashbank_views.withdraw_view, name="evidence_withdraw"),
    path("cases/<int:pk>/links/confirm/", hashbank_views.confirm_url_view, name="url_confirm"),
    path("cases/<int:pk>/links/withdraw/", hashbank_views.withdraw_url_view, name="url_withdraw"),
    path("wellbeing/", wellbeing.wellbeing_view, name="wellbeing"),
    path("providers/", include("cophub.providers.urls")),
    path("alerts/", include("cophub.alerts.urls")),
]
