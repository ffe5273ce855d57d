from django.urls import path

from . import views

app_name = "federation"

urlpatterns = [
    path("webhook/<int:upstream_id>", views.webhook, name="webhook"),
]
