"""Behind a proxy: which ``X-Forwarded-*`` headers to believe, and from whom.

The headers are the de-facto ``X-Forwarded-For``, ``X-Forwarded-Proto`` and
``X-Forwarded-Host`` (RFC 7239 §1 describes them and standardises their meaning as
``Forwarded``'s ``for``, ``proto`` and ``host``). Anyone can send them, so they are believed only
when the TCP peer is listed in ``trusted_proxies`` — nginx's realip module with
``set_real_ip_from`` for each entry and ``real_ip_recursive on`` is the reference behaviour:

- the client address is the rightmost ``X-Forwarded-For`` entry that is not itself a trusted
  proxy (entries to its left were written by the client and are ignored); when every entry is
  trusted, the leftmost;
- an entry reached on that walk that is not an IP address makes the whole header ignored (the
  address stays the peer's), as nginx declines such a header;
- ``X-Forwarded-Proto`` of ``http`` or ``https`` becomes the request's scheme, a valid
  ``host[:port]`` in ``X-Forwarded-Host`` its host; anything else is ignored.

Tornado's own ``xheaders=True`` is never used: it believes these headers from any peer.
``ProxyAwareApplication`` applies the decision once per request, before a handler exists, so
every later reader of ``request.remote_ip``/``protocol``/``host`` (the access log included)
sees the believed values.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from tornado.httputil import HTTPHeaders, HTTPServerRequest, split_host_and_port
from tornado.web import Application

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

SCHEMES = ("http", "https")
# RFC 3986 §3.2.2 host (a DNS name, an IPv4 address or a bracketed IPv6 literal) and an
# optional port: what a Host header may carry (RFC 9110 §7.2).
_HOST_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
    r"|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]{1,5})?")


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``trusted_proxies`` entries (addresses or CIDRs, IPv4 or IPv6) as networks, like
    nginx's ``set_real_ip_from``. Raises ValueError naming the first bad entry; a CIDR with
    host bits set (``10.0.0.1/8``) is refused rather than widened silently.

    >>> parse_networks(["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"])
    (IPv4Network('127.0.0.1/32'), IPv4Network('10.0.0.0/8'), IPv6Network('::1/128'), \
IPv6Network('fd00::/8'))
    >>> parse_networks(["10.0.0.1/8"])
    Traceback (most recent call last):
    ValueError: trusted_proxies: '10.0.0.1/8' has host bits set (the network is 10.0.0.0/8)
    """
    networks = []
    for entry in entries:
        text = entry.strip()
        try:
            networks.append(ipaddress.ip_network(text))
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {entry!r} is not an IP address or CIDR "
                                 "like 10.0.0.0/8 or fd00::/8") from None
            raise ValueError(f"trusted_proxies: {entry!r} has host bits set "
                             f"(the network is {loose})") from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """An IP address as a peer or an ``X-Forwarded-For`` entry gives it, or None. An
    IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) is the IPv4 one."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class Forwarded:
    """What a request is believed to be: client address, scheme and host."""

    remote_ip: str
    protocol: str
    host: str


@dataclass(frozen=True)
class TrustedProxies:
    """The configured ``trusted_proxies`` and the decision they make for one request."""

    networks: tuple[Network, ...] = ()

    def trusts(self, address: Address | None) -> bool:
        """Whether ``address`` is a trusted proxy (``set_real_ip_from``)."""
        return address is not None and any(address in network for network in self.networks)

    def client_address(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client's address: ``peer`` unless it is trusted, else the rightmost
        ``X-Forwarded-For`` entry that is not trusted (``real_ip_recursive on``).
        ``forwarded_for`` holds the header's lines in order, each a comma-separated list."""
        if not self.trusts(parse_address(peer)):
            return peer
        entries = [entry.strip() for line in forwarded_for for entry in line.split(",")]
        if not entries:
            return peer
        client: Address | None = None
        for entry in reversed(entries):
            client = parse_address(entry)
            if client is None:
                return peer  # malformed where the walk reached it: ignore the header
            if not self.trusts(client):
                break
        return str(client)

    def believe(self, peer: str, protocol: str, host: str, headers: HTTPHeaders) -> Forwarded:
        """The request's address, scheme and host once the forwarded headers from a trusted
        peer are applied; from any other peer, the ones given."""
        if not self.networks or not self.trusts(parse_address(peer)):
            return Forwarded(peer, protocol, host)
        remote_ip = self.client_address(peer, headers.get_list("X-Forwarded-For"))
        proto = headers.get("X-Forwarded-Proto", "").strip().lower()
        forwarded_host = headers.get("X-Forwarded-Host", "").strip()
        return Forwarded(
            remote_ip,
            proto if proto in SCHEMES else protocol,
            forwarded_host if valid_host(forwarded_host) else host)


def valid_host(value: str) -> bool:
    """Whether ``value`` is one ``host[:port]`` (RFC 9110 §7.2) with a port up to 65535.

    >>> [valid_host(v) for v in ("files.example", "files.example:8443", "[::1]:80", "1.2.3.4")]
    [True, True, True, True]
    >>> [valid_host(v) for v in ("", "a.example, b.example", "a b", "a:99999", "a/b", "[x]")]
    [False, False, False, False, False, False]
    """
    if len(value) > 255 or not _HOST_RE.fullmatch(value):
        return False
    _, port = split_host_and_port(value)
    if value.startswith("[") and parse_address(value[1:value.index("]")]) is None:
        return False
    return port is None or 0 < port < 65536


def apply(request: HTTPServerRequest, proxies: TrustedProxies) -> None:
    """Set ``remote_ip``, ``protocol``, ``host`` and ``host_name`` on ``request`` from the
    headers a trusted peer forwarded (``TrustedProxies.believe``)."""
    believed = proxies.believe(request.remote_ip or "", request.protocol, request.host,
                               request.headers)
    request.remote_ip = believed.remote_ip
    request.protocol = believed.protocol
    if believed.host != request.host:
        request.host = believed.host
        request.host_name = split_host_and_port(believed.host.lower())[0]


class ProxyAwareApplication(Application):
    """Tornado's Application, applying ``trusted_proxies`` (its ``trusted_proxies`` setting, a
    ``TrustedProxies``) to each request as it is routed — before its handler exists."""

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> Any:
        proxies = self.settings.get("trusted_proxies")
        if isinstance(proxies, TrustedProxies) and proxies.networks:
            apply(request, proxies)
        return super().find_handler(request, **kwargs)
