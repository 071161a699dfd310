"""Template context shared by every page: what the menu offers, by the user's roles."""

from django.http import HttpRequest

from portal.accounts.models import REVIEW_ROLES, UPLOAD_ROLES, Membership, Role


def navigation(request: HttpRequest) -> dict:
    """What the menu offers: only what the user's roles allow (uploading for uploaders and
    leads, the review queue for reviewers and leads, the audit log and team for leads). An
    error page for a request refused before authentication (a bad Host header) has no user:
    no menu."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_is_lead": False, "nav_can_upload": False, "nav_can_review": False}
    roles = set(Membership.objects.filter(user=user).values_list("role", flat=True))
    if user.is_superuser:
        roles = set(Role)
    return {
        "nav_is_lead": Role.LEAD in roles,
        "nav_can_upload": bool(roles & set(UPLOAD_ROLES)),
        "nav_can_review": bool(roles & set(REVIEW_ROLES)),
    }
