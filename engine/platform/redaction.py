"""Hiding email addresses and phone numbers in free text (provider errors, log lines).

Providers quote the recipient in their refusals (an SMTP server's ``550 5.1.1
<jane@example.com>: Recipient address rejected``, Twilio's ``The 'To' number
+4915112345678 is not a valid phone number``), and those texts travel on into our
exceptions, Temporal's failures, the logs and our tables. ``redact`` replaces every
address with ``<email>`` and every number with ``<phone>``, and keeps the rest:
SMTP codes (``550 5.1.1``), Twilio error codes (``21610``), dates, times, IP
addresses, ports, versions, ids.

What counts as personal data here:

* an **email address**: a local part, ``@`` (or its URL encoding ``%40``), and a
  domain name with at least one dot whose last label starts with a letter
  (``jane@localhost`` and ``postgres@127.0.0.1`` name machines, not people);
* a **phone number with a '+'** (or ``%2B``): ``+`` and 7 or more digits, with the
  separators people write (spaces, ``-``, ``.``, ``/``, parentheses);
* a **national number** written with separators: 7-15 digits in at least two groups
  that start with a trunk prefix (``030 12345678``, ``0151-12345678``, ``06 12 34 56
  78``), with an area code in parentheses (``(415) 555-0100``), or in the North
  American 3-3-4 shape (``415-555-0100``); dates such as ``06.12.2026`` are not;
* **13-15 plain digits** that read as a possible international number once a ``+`` is
  put in front (``4915112345678``: E.164 with its '+' dropped).

Plain runs of up to 12 digits are left alone: order numbers, numeric customer ids,
byte counts and timestamps look exactly like national numbers without a country, and
the numbers we send to are always E.164 with their '+'. The same rule decides which
customer ids are refused (``engine.platform.rpc.violations``), so an id that is
accepted always survives redaction whole, and ops can still find it in the logs.

Every pattern starts only at the beginning of a run of the characters it consumes and
uses atomic groups, so a huge hostile text costs time linear in its length.
"""

from __future__ import annotations

import re

import phonenumbers

EMAIL = "<email>"
PHONE = "<phone>"

# Characters of an address's local part (RFC 5322's atext without the ones that
# delimit values in logs and URLs: quote, slash, equals, backtick) and %-escapes
# other than %40, which is the '@' itself.
_LOCAL_CHARS = r"\w.!#$&*+^{|}~\-"
_EMAIL = re.compile(
    rf"(?<![{_LOCAL_CHARS}%])"
    rf"(?>(?:[{_LOCAL_CHARS}]|%(?!40)[0-9A-Fa-f]{{2}})+)"
    r"(?:@|%40)"
    r"(?:(?>[^\W_][\w-]*)\.)+"
    r"(?>[^\W\d_][\w-]*)"
    r"(?![\w-])"
)

# Digit groups joined by one separator, or by parentheses around an area code:
# "030 1234567", "+1 (415) 555-0100", "+49 (0)30 1234567", "030/1234567".
_JOIN = r"(?:[ .\-/]?\(|\)[ .\-/]?|[ .\-/])"
_PHONE = re.compile(
    r"(?<![\w+%.\-/])"
    r"(?P<plus>\+ ?|%2[Bb] ?)?"
    rf"(?P<number>\(?(?>\d+)(?:{_JOIN}(?>\d+))*)"
    r"(?!\w)"
)
_DATE = re.compile(r"\d{1,2}([./-])\d{1,2}\1(?:\d{4}|\d{2})(?: \d{1,2})?")
_TRUNK_PREFIX = re.compile(r"0[1-9]\d{0,4}")
_AREA_IN_PARENTHESES = re.compile(r"\(\d{1,5}\)")

MIN_DIGITS = 7
MAX_DIGITS = 15  # E.164
# Up to this many plain digits are ids, not numbers (see the module's docstring).
MAX_PLAIN_ID_DIGITS = 12


def redact(text: str) -> str:
    """``text`` with every email address and phone number replaced by a placeholder."""
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(EMAIL, text)
    return _PHONE.sub(_phone_or_kept, text)


def personal_data_in(text: str) -> bool:
    """Whether ``text`` holds something ``redact`` would hide."""
    return redact(text) != text


def _phone_or_kept(match: re.Match[str]) -> str:
    return PHONE if _is_phone_number(match["plus"] is not None, match["number"]) else match[0]


def _is_phone_number(plus: bool, number: str) -> bool:
    groups = re.findall(r"\d+", number)
    digits = sum(len(group) for group in groups)
    if plus:
        return digits >= MIN_DIGITS
    if len(groups) == 1 and number.isdigit():
        return MAX_PLAIN_ID_DIGITS < digits <= MAX_DIGITS and _international(number)
    if not MIN_DIGITS <= digits <= MAX_DIGITS or _DATE.fullmatch(number):
        return False
    lengths = [len(group) for group in groups]
    return bool(
        _TRUNK_PREFIX.fullmatch(groups[0])
        or _AREA_IN_PARENTHESES.match(number)
        or (lengths == [3, 3, 4] and groups[0][0] in "23456789")
        or (lengths == [1, 3, 3, 4] and groups[0] == "1")
    )


def _international(digits: str) -> bool:
    """Whether ``digits`` are a possible number of some country, read as E.164."""
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    region = phonenumbers.region_code_for_number(number)
    return region not in (None, "ZZ") and phonenumbers.is_possible_number(number)
