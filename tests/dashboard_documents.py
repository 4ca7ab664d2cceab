"""The GraphQL documents the dashboard sends, read from its own files (api/web/static/queries.js
and graphql.js), with `${NAME}` pieces filled in as the browser does, and the variables that make
each as dear as the page ever makes it: 500 usernames, 366 days, the largest page."""

from __future__ import annotations

import re
from typing import Any

from tests.servers import ROOT

STATIC = ROOT / "api" / "web" / "static"
_CONSTANT = re.compile(r'const ([A-Z_]+) =\s*(?:`([^`]*)`|"([^"]*)")', re.S)
_PIECE = re.compile(r"\$\{([A-Z_]+)\}")
# The dearest variables the page sends (api/web/static/*.js): whole selections of up to a
# batch of usernames, a year of usage history.
LARGEST: dict[str, Any] = {
    "usernames": [f"user{i}" for i in range(500)],
    "from": "2025-01-01",
    "to": "2025-12-31",
    "first": 100,
}


def _filled(text: str, constants: dict[str, str]) -> str:
    return _PIECE.sub(lambda match: constants[match.group(1)], text)


def documents() -> dict[str, str]:
    """Each operation of the dashboard by its constant's name."""
    constants: dict[str, str] = {}
    for name in ("graphql.js", "queries.js"):
        for constant, template, plain in _CONSTANT.findall((STATIC / name).read_text()):
            constants[constant] = template or plain
    for _ in range(3):  # pieces inside pieces
        constants = {name: _filled(text, constants) for name, text in constants.items()}
    return {
        name: text
        for name, text in constants.items()
        if text.lstrip().startswith(("query", "mutation", "subscription"))
    }
