from django.contrib import admin

from portal.pacs.models import AllowedSender, SiteAE
from portal.pacs.services import site_ae_audit, site_ae_state


class AllowedSenderInline(admin.TabularInline):
    model = AllowedSender
    extra = 1


@admin.register(SiteAE)
class SiteAEAdmin(admin.ModelAdmin):
    """A site's AE title and its senders; every change is audited as `manage.py dicom_ae`'s
    (one at a time: no bulk delete, which would skip the audit)."""

    list_display = ("ae_title", "site")
    inlines = [AllowedSenderInline]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change) -> None:
        if change:
            obj._audit_before = site_ae_state(SiteAE.objects.get(pk=obj.pk))
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        before = getattr(form.instance, "_audit_before", None)
        site_ae_audit(form.instance, actor=request.user, before=before)

    def delete_model(self, request, obj) -> None:
        before = site_ae_state(obj)
        super().delete_model(request, obj)
        site_ae_audit(obj, actor=request.user, before=before, deleted=True)
