"""The API's rate limits (DRF's anonymous and per-user rates), counted by the portal's client
address (portal.core.proxies) rather than DRF's own `NUM_PROXIES` reading of
X-Forwarded-For, which believes the header from any peer."""

from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from portal.core.proxies import client_address


class AnonThrottle(AnonRateThrottle):
    def get_ident(self, request) -> str:
        return client_address(request)


class UserThrottle(UserRateThrottle):
    def get_ident(self, request) -> str:
        return client_address(request)
