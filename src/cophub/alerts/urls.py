"""The alerts' console pages, included by the console at /console/alerts/.

No app_name of its own: the names live in the console's namespace (`console:alerts`, `console:alerts_read`).
"""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.alerts_view, name="alerts"),
    path("read/", views.mark_read_view, name="alerts_read"),
]
