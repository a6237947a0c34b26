"""Principals and their static tokens for the tests of access control (in-process, and the
page, the CLI, tuspy end to end): the ``tokens`` setting, a TOML ``[[tokens]]`` section for
``python server.py --config``, and the request headers each principal sends."""

from __future__ import annotations

SIGNING_KEY = "an-e2e-signing-key-of-at-least-32-characters"
TOKENS = {
    "alice": ("alice-token-0123456789", ["read", "write", "delete"]),
    "bob": ("bob-token-0123456789ab", ["read", "write", "delete"]),
    "reader": ("reader-token-0123456789", ["read"]),
    "writer": ("writer-token-0123456789", ["write"]),
    "rw": ("rw-token-0123456789abcd", ["read", "write"]),
    "admin": ("admin-token-0123456789", ["admin"]),
}
WRONG_TOKEN = "not-a-token-of-this-server-42"


def tokens_toml(extra: str = "") -> str:
    """A config file: ``signing_key``, one ``[[tokens]]`` entry per principal, then
    ``extra``: more tables (``[[routes]]``), which TOML lets follow the tokens."""
    entries = "".join(
        f'\n[[tokens]]\ntoken = "{token}"\nprincipal = "{name}"\nscopes = {scopes!r}\n'
        .replace("'", '"') for name, (token, scopes) in TOKENS.items())
    return f'signing_key = "{SIGNING_KEY}"\n{entries}\n{extra}'


def tokens_setting() -> list[dict[str, object]]:
    """The ``tokens`` setting (as ``build_config`` takes it) for every principal."""
    return [{"token": token, "principal": name, "scopes": scopes}
            for name, (token, scopes) in TOKENS.items()]


def bearer(name: str) -> dict[str, str]:
    """``Authorization: Bearer <token>`` of a principal of :data:`TOKENS`."""
    return {"Authorization": f"Bearer {TOKENS[name][0]}"}
