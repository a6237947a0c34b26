"""``trusted_proxies`` (docs/deploying.md, Behind a proxy): the decision of web/proxies.py, the
configuration that feeds it, and nginx's realip module (``real_ip_recursive on``) as the
reference for which X-Forwarded-For entry is the client."""

from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders

from tornado_files.config import ConfigError, build_config, env_settings
from tornado_files.web.proxies import Forwarded, TrustedProxies, parse_networks

LOCAL = TrustedProxies(parse_networks(["127.0.0.1"]))
CHAIN = TrustedProxies(parse_networks(["10.0.0.0/8", "192.0.2.7", "fd00::/8"]))


def headers(**values: str) -> HTTPHeaders:
    built = HTTPHeaders()
    for name, value in values.items():
        built.add(name.replace("_", "-"), value)
    return built


@pytest.mark.parametrize(("proxies", "peer", "xff", "client"), [
    # No proxies configured, or an untrusted peer: the header changes nothing.
    (TrustedProxies(), "127.0.0.1", ["203.0.113.5"], "127.0.0.1"),
    (LOCAL, "198.51.100.1", ["203.0.113.5"], "198.51.100.1"),
    (CHAIN, "11.0.0.1", ["203.0.113.5"], "11.0.0.1"),
    # A trusted peer: the entry it appended.
    (LOCAL, "127.0.0.1", ["203.0.113.5"], "203.0.113.5"),
    (LOCAL, "127.0.0.1", [" 203.0.113.5 "], "203.0.113.5"),
    # Several proxies: the rightmost entry that is not one of them.
    (CHAIN, "10.1.2.3", ["203.0.113.5, 192.0.2.7, 10.9.9.9"], "203.0.113.5"),
    (CHAIN, "10.1.2.3", ["203.0.113.5", "192.0.2.7,10.9.9.9"], "203.0.113.5"),
    # Spoofed leftmost entries (the client wrote them) are ignored, even malformed ones.
    (LOCAL, "127.0.0.1", ["1.1.1.1, 8.8.8.8, 203.0.113.5"], "203.0.113.5"),
    (CHAIN, "10.0.0.1", ["10.0.0.2, 203.0.113.5, 10.0.0.3"], "203.0.113.5"),
    (LOCAL, "127.0.0.1", ["not-an-address, 203.0.113.5"], "203.0.113.5"),
    # Every entry trusted: the leftmost, as nginx.
    (CHAIN, "10.0.0.1", ["10.0.0.2, 192.0.2.7"], "10.0.0.2"),
    # Malformed where the walk reaches it, or empty: the header is ignored.
    (LOCAL, "127.0.0.1", ["203.0.113.5:4711"], "127.0.0.1"),
    (LOCAL, "127.0.0.1", ["unknown"], "127.0.0.1"),
    (LOCAL, "127.0.0.1", [""], "127.0.0.1"),
    (LOCAL, "127.0.0.1", ["203.0.113.5,"], "127.0.0.1"),
    (CHAIN, "10.0.0.1", ["203.0.113.5, garbage, 10.0.0.2"], "10.0.0.1"),
    (LOCAL, "127.0.0.1", ["[2001:db8::1]"], "127.0.0.1"),
    (LOCAL, "127.0.0.1", [], "127.0.0.1"),
    # IPv6 peers, proxies and clients.
    (CHAIN, "fd12::1", ["2001:db8::1"], "2001:db8::1"),
    (CHAIN, "fd12::1", ["2001:db8::1, fd00::5"], "2001:db8::1"),
    (CHAIN, "fe80::1", ["2001:db8::1"], "fe80::1"),
    (TrustedProxies(parse_networks(["::1"])), "::1", ["203.0.113.5"], "203.0.113.5"),
    # A dual-stack socket's IPv4-mapped peer is the IPv4 address.
    (LOCAL, "::ffff:127.0.0.1", ["203.0.113.5"], "203.0.113.5"),
    (LOCAL, "127.0.0.1", ["::ffff:203.0.113.5"], "203.0.113.5"),
    # CIDR edges.
    (CHAIN, "10.255.255.255", ["203.0.113.5"], "203.0.113.5"),
    (CHAIN, "9.255.255.255", ["203.0.113.5"], "9.255.255.255"),
])
def test_client_address(proxies, peer, xff, client):
    assert proxies.client_address(peer, xff) == client


def test_scheme_and_host_only_from_a_trusted_peer():
    forwarded = headers(X_Forwarded_For="203.0.113.5", X_Forwarded_Proto="https",
                        X_Forwarded_Host="files.example:8443")
    assert LOCAL.believe("127.0.0.1", "http", "backend:8888", forwarded) == Forwarded(
        "203.0.113.5", "https", "files.example:8443")
    untrusted = Forwarded("198.51.100.1", "http", "backend:8888")
    assert LOCAL.believe("198.51.100.1", "http", "backend:8888", forwarded) == untrusted
    assert TrustedProxies().believe("127.0.0.1", "http", "h", forwarded) == Forwarded(
        "127.0.0.1", "http", "h")


@pytest.mark.parametrize(("proto", "believed"), [
    ("https", "https"), ("HTTPS", "https"), ("Http", "http"), ("ftp", "http"),
    ("https, http", "http"), ("", "http"),
])
def test_forwarded_proto(proto, believed):
    result = LOCAL.believe("127.0.0.1", "http", "h", headers(X_Forwarded_Proto=proto))
    assert result.protocol == believed


@pytest.mark.parametrize(("host", "believed"), [
    ("files.example", "files.example"), ("files.example:443", "files.example:443"),
    ("[2001:db8::1]:8443", "[2001:db8::1]:8443"), ("203.0.113.5", "203.0.113.5"),
    ("a.example, b.example", "h"), ("evil.example/path", "h"), ("a:70000", "h"),
    ("[nothex]", "h"), ("", "h"), ("x" * 300, "h"),
])
def test_forwarded_host(host, believed):
    result = LOCAL.believe("127.0.0.1", "http", "h", headers(X_Forwarded_Host=host))
    assert result.host == believed


def test_no_forwarded_headers_keep_everything():
    assert LOCAL.believe("127.0.0.1", "http", "h", headers()) == Forwarded("127.0.0.1", "http",
                                                                          "h")


# -- configuration ---------------------------------------------------------------------------
def test_default_is_empty():
    assert build_config({}, {}, {}).trusted_proxies == ()


def test_toml_list_of_addresses_and_cidrs():
    config = build_config({"trusted_proxies": ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]},
                          {}, {})
    assert [str(n) for n in config.trusted_proxies] == [
        "127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"]


def test_environment_is_comma_separated_and_beats_toml():
    env = env_settings({"TORNADO_FILES_TRUSTED_PROXIES": " 10.0.0.1, fd00::/8 ,,"})
    assert env == {"trusted_proxies": ["10.0.0.1", "fd00::/8"]}
    config = build_config({"trusted_proxies": ["192.0.2.1"]}, env, {})
    assert [str(n) for n in config.trusted_proxies] == ["10.0.0.1/32", "fd00::/8"]
    assert build_config({}, env_settings({"TORNADO_FILES_TRUSTED_PROXIES": ""}), {}
                        ).trusted_proxies == ()


@pytest.mark.parametrize(("value", "message"), [
    (["10.0.0.0/33"], "trusted_proxies: '10.0.0.0/33' is not an IP address or CIDR"),
    (["proxy.example"], "trusted_proxies: 'proxy.example' is not an IP address or CIDR"),
    (["10.0.0.1/8"], r"trusted_proxies: '10.0.0.1/8' has host bits set \(the network is "
                     r"10.0.0.0/8\)"),
    (["fd00::1/8"], "trusted_proxies: 'fd00::1/8' has host bits set"),
    ("10.0.0.1", "trusted_proxies: expected a list"),
    ([10], "trusted_proxies: expected a list"),
])
def test_bad_entries_stop_start_up_with_one_line(value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        build_config({"trusted_proxies": value}, {}, {})
    assert "\n" not in str(caught.value)


def test_bad_environment_entry_is_named():
    env = env_settings({"TORNADO_FILES_TRUSTED_PROXIES": "10.0.0.1,300.1.1.1"})
    with pytest.raises(ConfigError, match=r"'300\.1\.1\.1' is not an IP address"):
        build_config({}, env, {})
