"""Django's admin site, with the admin's own password page going through the accounts service
(checked, and on the record as `user.password`) like every other password set."""

from django.contrib import admin
from django.contrib.admin.forms import AdminPasswordChangeForm
from django.contrib.auth.views import PasswordChangeView
from django.urls import reverse

from portal.accounts import services


class OwnPasswordChangeForm(AdminPasswordChangeForm):
    def save(self, commit: bool = True):
        services.user_set_password(
            actor=self.user, user=self.user, password=self.cleaned_data["new_password1"]
        )
        return self.user


class PortalAdminSite(admin.AdminSite):
    def password_change(self, request, extra_context=None):
        """Django's own view (old password, two new ones), with the form saved above."""
        request.current_app = self.name
        return PasswordChangeView.as_view(
            form_class=OwnPasswordChangeForm,
            success_url=reverse("admin:password_change_done", current_app=self.name),
            extra_context={**self.each_context(request), **(extra_context or {})},
            **(
                {"template_name": self.password_change_template}
                if self.password_change_template
                else {}
            ),
        )(request)
