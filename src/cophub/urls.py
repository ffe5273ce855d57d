from django.contrib import admin
from django.urls import include, path

from cophub.core import views as core_views
from cophub.netfilter import views_public as netfilter_public
from cophub.providers.api import api as provider_api
from cophub.referrals.views_public import callback as referral_callback

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("lang/<str:code>/", core_views.switch_language, name="switch-language"),
    # Before the console's own include: its patterns are the cases app's to edit.
    path("console/hash-lists/", include("cophub.hashbanks.urls")),
    path("console/referrals/", include("cophub.referrals.urls")),
    path("console/network-filter/", include("cophub.netfilter.urls")),
    path("console/", include("cophub.cases.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", provider_api.urls),
    path("federation/", include("cophub.federation.urls")),
    path("referrals/callback/<str:public_id>", referral_callback, name="referral-callback"),
    path("netfilter/mistake/", netfilter_public.mistake, name="netfilter-mistake"),
    path("netfilter/mistake/sent/", netfilter_public.mistake_sent, name="netfilter-mistake-sent"),
    path("", include("cophub.intake.urls")),
]

handler400 = "cophub.core.views.bad_request"
handler403 = "cophub.core.views.permission_denied"
handler404 = "cophub.core.views.not_found"
handler500 = "cophub.core.views.server_error"
