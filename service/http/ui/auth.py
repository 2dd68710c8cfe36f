"""How a browser passes the token guard (middleware.py) when GANSERVE_API_TOKEN is set.

A browser cannot add `Authorization: Bearer` to a page it navigates to, so the playground has a
login form (GET /ui/login): the token posted there, when right, sets an HttpOnly cookie that the
guard accepts in place of the header, on every guarded route (the page's own requests to /sample,
/score, /interpolate and /models carry it). The cookie holds an HMAC of the token, not the token:
a leaked cookie does not give the bearer token away, and changing the token ends every session.
SameSite=Strict keeps other sites' pages from making a logged-in browser send requests (CSRF);
HttpOnly keeps the page's own scripts from reading it. No token in URLs (`?token=`): URLs end up
in access logs and browser history.
"""

from __future__ import annotations

import hashlib
import hmac
from html import escape
from typing import Optional

COOKIE = "ganserve_session"
LOGIN_PATH = "/ui/login"
# The page itself is guarded; the login form (and its answer) must be reachable without a token.
OPEN_PATHS = frozenset({LOGIN_PATH})


def session_value(token: str) -> str:
    """The cookie's value for this token: HMAC-SHA256(token, a fixed label), hex."""
    return hmac.new(token.encode(), b"ganserve ui session v1", hashlib.sha256).hexdigest()


def cookie_of(cookie_header: str) -> Optional[str]:
    """This service's session cookie from a Cookie header, or None (no full cookie parser: names
    and values here are plain ASCII)."""
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def valid(cookie_header: str, expected: str) -> bool:
    given = cookie_of(cookie_header)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())  # constant time


def set_cookie_header(value: str, secure: bool, max_age: int = 12 * 3600) -> str:
    flags = f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    return flags + ("; Secure" if secure else "")


def login_page(problem: str = "") -> str:
    """A self-contained form (no script, no stylesheet, nothing fetched)."""
    note = f'<p id="login-error" role="alert">{escape(problem)}</p>' if problem else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ganserve: sign in</title>
<link rel="icon" href="data:,">
<style>body{{font:16px system-ui,sans-serif;max-width:26rem;margin:4rem auto;color:#222}}
input{{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.4rem 0}}
button{{font:inherit;padding:.4rem 1rem}} #login-error{{color:#b00020}}</style></head>
<body><h1>ganserve playground</h1>
<p>This server asks for its API token (GANSERVE_API_TOKEN).</p>{note}
<form method="post" action="{LOGIN_PATH}"><label>Token <input id="token" name="token" type="password" autocomplete="current-password" autofocus></label>
<button id="sign-in" type="submit">Sign in</button></form></body></html>"""
