"""Authentication that counts failures (portal.core.login_throttle): a Django backend for every
password check, and DRF classes that answer 429 once the caller is throttled and 401 with
`WWW-Authenticate` for bad credentials. Token keys are checked against their sha256
(portal.core.tokens); the header stays DRF's `Authorization: Token <key>`."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest
from drf_spectacular.authentication import BasicScheme
from rest_framework.authentication import (
    BasicAuthentication,
    TokenAuthentication,
    get_authorization_header,
)
from rest_framework.exceptions import AuthenticationFailed, Throttled

from portal.core.login_throttle import (
    login_failure_record,
    login_success_record,
    login_wait_seconds,
)
from portal.core.models import ApiToken
from portal.core.tokens import token_find


class ThrottledModelBackend(ModelBackend):
    """ModelBackend that refuses a throttled name or address and counts each failure."""

    def authenticate(self, request: HttpRequest | None, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        if login_wait_seconds(request=request, username=username):
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_failure_record(request=request, username=username)
        else:
            login_success_record(request=request, username=username)
        return user


class ThrottledBasicAuthentication(BasicAuthentication):
    """First of the API's classes, so that its header turns failed authentication into 401."""

    def authenticate_credentials(self, userid, password, request=None):
        if wait := login_wait_seconds(request=request, username=userid):
            raise Throttled(wait=wait, detail="Too many failed logins.")
        return super().authenticate_credentials(userid, password, request)

    def authenticate_header(self, request) -> str:
        # A browser answers `Basic` with its own password dialog; a page whose session has
        # expired should not get one, so `Basic` is named only to a client that sent it.
        auth = get_authorization_header(request).split()
        if auth and auth[0].lower() == b"basic":
            return super().authenticate_header(request)
        return TokenAuthentication.keyword


class ThrottledTokenAuthentication(TokenAuthentication):
    """A bad token counts against the caller's address, as a bad password does."""

    model = ApiToken

    def authenticate_credentials(self, key: str):
        token = token_find(key=key)
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return token.user, token

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() != self.keyword.lower().encode():
            return None
        if wait := login_wait_seconds(request=request, username=None):
            raise Throttled(wait=wait, detail="Too many failed logins.")
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            login_failure_record(request=request, username=None)
            raise


class ThrottledBasicScheme(BasicScheme):
    """The schema's `basicAuth` (token auth is matched by subclass already)."""

    target_class = ThrottledBasicAuthentication
