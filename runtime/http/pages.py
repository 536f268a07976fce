"""What the server's own pages (/docs, the console at /) share: their assets from the package, and the headers
that lock each page down."""

from __future__ import annotations

from importlib import resources

# The page loads only its own assets and talks only to this server.
# frame-ancestors: no other page may frame it (clickjacking).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

# nosniff: a script or style is run only with its own type; X-Frame-Options says frame-ancestors to older browsers.
# same-origin opener: a page that opened this one in a window cannot navigate it to a look-alike key form.
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def read_asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")
