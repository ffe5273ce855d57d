from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from . import keys
from .models import ApiKey, Provider


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fk_name = "provider"
    extra = 0
    can_delete = False
    fields = ["prefix", "scopes", "sandbox", "created_at", "last_used_at", "revoked_at", "expires_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        # Keys are issued with keys.issue_key, which shows the secret once.
        return False


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "unit", "contact_email", "active"]
    list_filter = ["active"]
    search_fields = ["name", "contact_email"]
    autocomplete_fields = ["unit"]
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["__str__", "provider", "sandbox", "scopes", "created_at", "last_used_at", "revoked_at", "expires_at"]
    list_filter = ["sandbox", "provider"]
    search_fields = ["prefix", "provider__name"]
    readonly_fields = ["provider", "prefix", "secret_digest", "scopes", "sandbox", "created_at", "last_used_at", "revoked_at", "replaced_by"]
    fields = readonly_fields + ["expires_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Revoke the selected keys"))
    def revoke(self, request, queryset):
        for key in queryset.select_related("provider__unit"):
            keys.revoke_key(key, actor=request.user)
        self.message_user(request, _("%(count)d keys revoked.") % {"count": queryset.count()}, messages.SUCCESS)
