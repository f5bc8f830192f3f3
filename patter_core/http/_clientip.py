"""Which IP a request comes from, for per-client limits.

The answer is the socket's peer address, unless that peer is one of the
configured trusted proxies: then ``X-Forwarded-For`` is read from the right,
skipping further trusted proxies, and the first address that is not one is
the client. Reading from the right matters: everything left of the last
trusted hop was written by the client itself and can be forged (the
"X-Forwarded-For" chain is appended to by each proxy; MDN and RFC 7239
section 8.1 describe the same caution).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .._errors import LocalProtocolError
from ._types import header_values

__all__ = ["TrustedProxies", "client_ip"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A forged header could list thousands of hops; only the last few can be
# our proxies, so looking further is wasted work.
_MAX_FORWARDED_HOPS = 20


class TrustedProxies:
    """A set of proxy addresses or networks (``"10.0.0.1"``, ``"10.0.0.0/8"``)."""

    __slots__ = ("_networks",)

    def __init__(self, entries: Iterable[str] = ()) -> None:
        networks: list[_Network] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                raise LocalProtocolError(f"not an IP address or network: {entry!r}") from exc
        self._networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        ip = _parse_ip(address)
        if ip is None:
            return False
        # A proxy configured in its IPv4-mapped IPv6 spelling is the same host.
        forms: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = (ip,)
        if isinstance(ip, ipaddress.IPv4Address):
            forms = (ip, ipaddress.IPv6Address(f"::ffff:{ip}"))
        return any(form in net for form in forms for net in self._networks)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:8080" form
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678" form
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4-mapped IPv6 peer (dual-stack sockets) is the IPv4 client.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_ip(
    peer: str,
    headers: Iterable[tuple[str, str]],
    trusted: TrustedProxies,
) -> str:
    """The client address to count a request against.

    ``peer`` is the socket's remote address; ``headers`` are the request's
    ``(name, value)`` pairs. Without trusted proxies the headers are ignored.
    A malformed forwarded entry stops the walk at the last trusted hop, so a
    bad header can never make the request look like it came from elsewhere.
    """
    peer_ip = _parse_ip(peer)
    canonical_peer = str(peer_ip) if peer_ip is not None else peer
    if not trusted or canonical_peer not in trusted:
        return canonical_peer
    hops = [hop for value in header_values(headers, "x-forwarded-for") for hop in value.split(",")]
    client = canonical_peer
    for hop in reversed(hops[-_MAX_FORWARDED_HOPS:]):
        ip = _parse_ip(hop)
        if ip is None:
            break
        client = str(ip)
        if client not in trusted:
            break
    return client
