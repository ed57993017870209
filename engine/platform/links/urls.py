"""The public addresses of signed links, under the HTTP app's public base URL.

``/u/{token}`` unsubscribes, ``/p/{token}`` opens the preferences page and
``/f/{token}`` records feedback (``?score=N`` when the message offered scores).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode


def unsubscribe_url(base_url: str, token: str) -> str:
    return _link(base_url, "u", token)


def preferences_url(base_url: str, token: str) -> str:
    return _link(base_url, "p", token)


def feedback_url(base_url: str, token: str, score: int | None = None) -> str:
    url = _link(base_url, "f", token)
    if score is None:
        return url
    return f"{url}?{urlencode({'score': score})}"


def _link(base_url: str, prefix: str, token: str) -> str:
    if not token:
        raise ValueError("a link needs a token")
    # itsdangerous' URL-safe tokens need no quoting; quote anyway so a stray
    # character can never change the path.
    return f"{base_url.rstrip('/')}/{prefix}/{quote(token, safe='')}"


# The query parameter that tells a customer page which language the message that
# linked to it was written for (engine.customers.pages speak it).
LANGUAGE_PARAM = "lang"
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}")


def with_language(url: str, tag: str | None) -> str:
    """``url`` with ``?lang=<tag>`` (``&`` when it has a query) for a plausible
    language tag; unchanged for none or anything else (tags come from shop data)."""
    if not tag or not _LANGUAGE_TAG.fullmatch(tag.strip()):
        return url
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}{urlencode({LANGUAGE_PARAM: tag.strip()})}"
