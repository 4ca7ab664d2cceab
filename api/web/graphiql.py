"""GraphiQL's page (development only), as Strawberry writes it, changed to work here: its files
come from this origin (api/web/static/graphiql: the same npm files, byte for byte, so the page's
integrity hashes still hold), not from unpkg, and its subscriptions send the Authorization header
of its headers editor (browsers cannot set headers on a WebSocket: it goes in connection_init's
payload instead)."""

from __future__ import annotations

_FILES = {
    "https://unpkg.com/react@18.2.0/umd/react.production.min.js": "react.production.min.js",
    "https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js": (
        "react-dom.production.min.js"
    ),
    "https://unpkg.com/js-cookie@3.0.5/dist/js.cookie.min.js": "js.cookie.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.css": "graphiql.min.css",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.js": "graphiql.min.js",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/style.css": "plugin-explorer.css",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": (
        "plugin-explorer.umd.js"
    ),
}
_FETCHER = "        subscriptionUrl,\n      });"
_FETCHER_WITH_CREDENTIALS = """        subscriptionUrl,
        wsConnectionParams: () => {
          try {
            const headers = JSON.parse(localStorage.getItem("graphiql:headers") || "{}");
            return headers.Authorization ? { Authorization: headers.Authorization } : {};
          } catch {
            return {};
          }
        },
      });"""


def graphiql_page(html: str) -> str:
    """Strawberry's page with the changes above; LookupError when a Strawberry upgrade names
    other versions of the files (vendor them, then name them here)."""
    for remote, local in _FILES.items():
        if remote not in html:
            raise LookupError(f"GraphiQL's page no longer loads {remote}")
        html = html.replace(remote, f"/static/graphiql/{local}")
    return html.replace(_FETCHER, _FETCHER_WITH_CREDENTIALS, 1)
