"""Shapes of names and addresses. Each check returns a normalised value or raises ValueError
with a sentence fit for a client."""

from __future__ import annotations

import functools
import ipaddress
import re

from api.errors import BadUserInput

# The local part of an address as mail servers accept it for mailbox names: letters, digits
# and . _ + - ', starting with a letter or digit, at most 64 characters.
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._+'-]{0,63}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SYSTEM_ADMIN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

MAX_NAME = 256
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str, what: str) -> None:
    if _CONTROL.search(value):
        raise ValueError(f"{what} must not contain control characters.")


def _name(value: str, what: str, pattern: re.Pattern[str], allowed: str) -> str:
    """`value` lower-cased and trimmed, when `pattern` takes it; else what a `what` may be."""
    _printable(value, f"A {what}")
    normal = value.strip().lower()
    if not pattern.fullmatch(normal):
        raise ValueError(
            f"{value[:80]!r} is not a valid {what}: use 1 to 64 letters, digits and {allowed}, "
            "starting with a letter or digit."
        )
    return normal


def username(value: str) -> str:
    return _name(value, "username", _USERNAME, ". _ + - '")


def domain_name(value: str) -> str:
    _printable(value, "A domain name")
    normal = value.strip().lower().rstrip(".")
    labels = normal.split(".")
    if (
        len(normal) > 253
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(f"{value[:80]!r} is not a valid domain name.")
    return normal


@functools.lru_cache(maxsize=65_536)
def email_address(value: str) -> tuple[str, str]:
    """(username, domain) of user@domain. The last 65,536 answers are remembered (a few MB):
    gateways report the same addresses over and over. A refused address raises again each
    time: errors are not remembered."""
    local, at, domain = value.strip().rpartition("@")
    if not at:
        raise ValueError(f"{value[:80]!r} is not an email address (user@domain).")
    return username(local), domain_name(domain)


def username_in_domain(value: str, domain: str) -> str:
    """A bare username, or a full address whose domain is `domain`."""
    if "@" not in value:
        return username(value)
    user, other = email_address(value)
    if other != domain:
        raise ValueError(f"{value[:80]!r} is not an address of {domain}.")
    return user


def system_admin_name(value: str) -> str:
    _printable(value, "A username")
    normal = value.strip().lower()
    if not _SYSTEM_ADMIN.fullmatch(normal):
        raise ValueError(
            "A system administrator's name is 1 to 64 letters, digits and . _ -, "
            "starting with a letter or digit."
        )
    return normal


def display_name(value: str | None) -> str | None:
    if value is None:
        return None
    _printable(value, "A name")
    normal = value.strip()
    if len(normal) > MAX_NAME:
        raise ValueError(f"A name is at most {MAX_NAME} characters.")
    return normal or None


def password(value: str) -> str:
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise ValueError(f"A password is {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    return value


def search_argument(value: str | None) -> str | None:
    """A list's `search` argument, normalised; a bad one is BAD_USER_INPUT (lists have no
    payload to carry userErrors)."""
    try:
        return search_text(value)
    except ValueError as error:
        raise BadUserInput(str(error)) from None


def username_argument(value: str | None, domain: str) -> str | None:
    """A list's `username` argument (a username, or an address of `domain`), normalised; a bad
    one is BAD_USER_INPUT."""
    if value is None:
        return None
    try:
        return username_in_domain(value, domain)
    except ValueError as error:
        raise BadUserInput(str(error)) from None


def search_text(value: str | None, *, maximum: int = 100) -> str | None:
    if value is None:
        return None
    _printable(value, "A search")
    normal = value.strip().lower()
    if len(normal) > maximum:
        raise ValueError(f"A search is at most {maximum} characters.")
    return normal or None


_TOKEN_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def token_name(value: str) -> str:
    return _name(value, "token name", _TOKEN_NAME, ". _ -")


def client_address(value: str | None) -> str | None:
    """An IPv4 or IPv6 address, in its canonical form."""
    if value is None or not value.strip():
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{value[:80]!r} is not an IP address.") from None


MAX_IDLE_DAYS = 3650


def idle_days(value: int) -> int:
    """A number of days an account may go without an allowed login: 1 to 3650 (ten years)."""
    if not 1 <= value <= MAX_IDLE_DAYS:
        raise ValueError(f"A number of idle days is from 1 to {MAX_IDLE_DAYS}; {value} was given.")
    return value


MAX_SESSION_ID = 128
MAX_CLIENT_NAME = 256


def session_id(value: str) -> str:
    """A gateway's id for a connection: 1 to 128 characters, none of them a control character."""
    _printable(value, "A session id")
    if not 0 < len(value) <= MAX_SESSION_ID:
        raise ValueError(f"A session id is 1 to {MAX_SESSION_ID} characters.")
    return value


def client_name(value: str | None) -> str | None:
    """The client as it named itself to the gateway (a User-Agent), trimmed."""
    if value is None:
        return None
    _printable(value, "A client name")
    normal = value.strip()
    if len(normal) > MAX_CLIENT_NAME:
        raise ValueError(f"A client name is at most {MAX_CLIENT_NAME} characters.")
    return normal or None
