"""Public URLs, served twice: at the root for the hub's own unit, and under
/s/<unit-code>/ for a school's own link, so that reports made there go to
that school. Names are the same; `reverse` picks the form by its arguments.
"""

from django.urls import include, path

from . import views

app_name = "intake"

public_pages = [
    path("", views.home, name="home"),
    path("child/", views.child, name="child"),
    path("adult/", views.adult, name="adult"),
    path("danger/", views.danger, name="danger"),
    path("danger/more/", views.danger_more, name="danger-more"),
    path("received/", views.received, name="received"),
    path("track/", views.track, name="track"),
    path("status/", views.status, name="status"),
    path("forget/", views.forget, name="forget"),
]

urlpatterns = [
    *public_pages,
    path("s/<slug:unit_code>/", include(public_pages)),
]
