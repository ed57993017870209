"""Who may read reports outside gRPC (the HTTP app's report page): an API key with
the ``reports:read`` scope, checked by the same :class:`Authenticator` as every
API call, so revoking a key or taking the scope away closes the page too."""

from __future__ import annotations

import grpc

from engine.access.auth import Authenticator, Refused
from engine.access.scopes import Scope
from engine.insights.report_page import AccessRefused, KeyCheck

_STATUS = {grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403}


def reports_key_check(authenticator: Authenticator) -> KeyCheck:
    """The page's check: AccessRefused 401 for a bad key, 403 without the scope, 503
    when the keys cannot be looked up now."""

    async def check(key: str) -> None:
        try:
            info = await authenticator.authenticate([("authorization", f"Bearer {key}")])
        except Refused as refused:
            raise AccessRefused(_STATUS.get(refused.code, 503), refused.message) from None
        if Scope.REPORTS_READ not in info.scopes:
            raise AccessRefused(
                403, f"API key {info.id} lacks scope {Scope.REPORTS_READ.value}, needed for reports"
            )

    return check
