"""The hash-list console pages, mounted at /console/hash-lists/ (namespace `hashlists`) by cophub/urls.py."""

from django.urls import path

from . import views

app_name = "hashlists"
urlpatterns = [
    path("", views.bank_list_view, name="banks"),
    path("new/", views.bank_create_view, name="bank_create"),
    path("<int:pk>/", views.bank_view, name="bank"),
    path("<int:pk>/settings/", views.bank_settings_view, name="bank_settings"),
    path("<int:pk>/enabled/", views.bank_switch_view, name="bank_switch"),
    path("<int:pk>/import/", views.bank_import_view, name="bank_import"),
    path("<int:pk>/entries/<int:entry_id>/disable/", views.entry_disable_view, name="entry_disable"),
    path("<int:pk>/entries/<int:entry_id>/reviewed/", views.entry_review_view, name="entry_review"),
]
