from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .models import Membership, Unit


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Unit)
class UnitAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "code", "parent", "is_hub_home"]
    list_filter = ["kind", "is_hub_home"]
    search_fields = ["name", "code"]
    autocomplete_fields = ["parent"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "unit"]
    list_filter = ["role", "unit__kind"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "unit__name"]
    autocomplete_fields = ["user", "unit"]


class UserMembershipInline(admin.TabularInline):
    """Roles on the account page itself: setting up a new staff member is one form."""

    model = Membership
    extra = 1
    autocomplete_fields = ["unit"]


User = get_user_model()
if admin.site.is_registered(User):
    base_admin = type(admin.site.get_model_admin(User))
    admin.site.unregister(User)
else:
    base_admin = UserAdmin


@admin.register(User)
class StaffUserAdmin(base_admin):
    inlines = [*base_admin.inlines, UserMembershipInline]
