"""The authenticator's own rules, on real tokens and real signed links: ambiguous
credentials, and upload links from an open server used after access control was switched on
with the same signing_key."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import parse_qs

import pytest
from tornado.httputil import HTTPHeaders

from tornado_files.auth.authenticator import Authenticator
from tornado_files.auth.links import LinkSigner
from tornado_files.auth.principal import Principal, Scope
from tornado_files.auth.tokens import TokenEntry, TokenTable
from tornado_files.config import ConfigError, build_config
from tornado_files.errors import InvalidSignature, Unauthorized

KEY = b"a-signing-key-of-at-least-32-characters"
ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"


def secured() -> Authenticator:
    table = TokenTable(tuple(
        TokenEntry(hashlib.sha256(token.encode()).hexdigest(),
                   Principal(name, frozenset({Scope.READ, Scope.WRITE}), "token"))
        for name, token in (("alice", ALICE), ("bob", BOB))))
    return Authenticator(tokens=table, jwt=None, links=LinkSigner(KEY))


def query(url_query: str) -> dict[str, list[bytes]]:
    return {k: [v.encode() for v in vs] for k, vs in parse_qs(url_query).items()}


@pytest.mark.parametrize("second", [BOB, ALICE, "junk-but-long-enough-123"])
def test_a_token_in_two_headers_is_refused(second):
    """RFC 6750 §2: one method per request. Before, Authorization won in silence, whatever
    X-Auth-Token said."""
    headers = HTTPHeaders({"Authorization": f"Bearer {ALICE}", "X-Auth-Token": second})
    with pytest.raises(Unauthorized) as refused:
        secured().authenticate("GET", "/api/files", headers, {})
    assert refused.value.invalid_token


def test_an_upload_link_made_while_open_is_refused_once_secured():
    open_server = Authenticator(tokens=TokenTable(()), jwt=None, links=LinkSigner(KEY))
    signed = LinkSigner(KEY).sign("POST", "/api/files", {"max_size": "10"},
                                  int(time.time()) + 600)
    principal = open_server.authenticate("POST", "/api/files", HTTPHeaders(), query(signed))
    assert principal.name is None  # fine while open: nobody owns anything
    with pytest.raises(InvalidSignature):
        secured().authenticate("POST", "/api/files", HTTPHeaders(), query(signed))
    owned = LinkSigner(KEY).sign("POST", "/api/files", {"max_size": "10", "owner": "alice"},
                                 int(time.time()) + 600)
    assert secured().authenticate("POST", "/api/files", HTTPHeaders(),
                                  query(owned)).name == "alice"


def test_a_signing_key_of_spaces_is_refused():
    with pytest.raises(ConfigError, match="signing_key: must be at least 32"):
        build_config({"signing_key": " " * 40}, {}, {})
