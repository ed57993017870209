"""Is a request really from Twilio? Its ``X-Twilio-Signature`` over the URL and form.

Twilio signs each callback with the account's auth token over the URL *it* called
and the form fields. Behind a proxy or tunnel that URL is not the one this process
sees, so the signature is checked against ``public_base_url`` plus the request's
path and query, never ``request.url``.

The signature covers the form, so checking it means reading the body. What needs
no body is checked first (:meth:`TwilioSignature.header_problem`): a request
without the header, or any request while no auth token is configured, is refused
before its body is read; the endpoints also cap the body (:data:`MAX_BODY_BYTES`).
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

SIGNATURE_HEADER = "X-Twilio-Signature"
# Twilio's form posts are a few KB: a status callback well under 1 KB, an inbound
# text at most 1,600 characters (about 14 KB percent-encoded at worst) with its
# media URLs and add-on results. 64 KiB leaves room for all of that, several times.
MAX_BODY_BYTES = 64 * 1024


class TwilioSignature:
    """Checks requests against the account's auth token (None: every request fails)."""

    def __init__(self, auth_token: str | None, public_base_url: str) -> None:
        self._validator = RequestValidator(auth_token) if auth_token else None
        self._base_url = public_base_url.rstrip("/")

    def header_problem(self, request: Request) -> str:
        """Why ``request`` cannot be a genuine Twilio request whatever its body says
        (no auth token configured, no signature header); "" when the body must tell."""
        if self._validator is None:
            return "no auth token configured"
        if not request.headers.get(SIGNATURE_HEADER):
            return "no signature"
        return ""

    def problem(self, request: Request, form: FormData) -> str:
        """Why ``form`` is not a genuine Twilio request; "" when it is."""
        if problem := self.header_problem(request):
            return problem
        signature = request.headers.get(SIGNATURE_HEADER)
        if self._validator is None or signature is None:  # pragma: no cover - checked above
            return "no signature"
        if not _text_only(form) or not self._validator.validate(
            self.public_url(request), form, signature
        ):
            return "signature does not match"
        return ""

    def public_url(self, request: Request) -> str:
        """The URL Twilio called: the public base URL, this request's path and query."""
        path = request.url.path
        root_path = request.scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        query = request.url.query
        return f"{self._base_url}{path}?{query}" if query else f"{self._base_url}{path}"


def _text_only(form: FormData) -> bool:
    # Twilio posts application/x-www-form-urlencoded text fields; a file upload is
    # never one of its requests.
    return all(isinstance(value, str) for _, value in form.multi_items())
