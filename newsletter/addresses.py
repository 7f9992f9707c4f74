"""Which addresses a source may connect to: the SSRF rules, as pure functions.

The transport (:mod:`newsletter.transport`) asks :func:`address_problem`
about every address a host resolves to, before connecting to one of them.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V4_COMPAT = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form tunnels to: mapped, NAT64, 6to4, Teredo, compatible."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or (ip in _V4_COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why a source must not connect to *ip*, or None for a public unicast address.

    ``is_global`` alone is not enough (REFERENCE.md): it is True for
    multicast and for IPv6 forms that carry a private IPv4 address
    (``64:ff9b::7f00:1`` is 127.0.0.1 through NAT64), so those are unwrapped
    and checked too.  Decimal and hex spellings (``2130706433``, ``0x7f.1``)
    never get here: the resolver turns them into addresses; spellings httpx
    refuses to parse (``0177.0.0.1``, full-width digits) are refused as
    invalid URLs before any of this.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:  # the IPv6 form only carries this IPv4 address: judge that one
            problem = address_problem(inner)
            return f"{problem} (tunnelled in {ip})" if problem else None
    if ip.is_loopback:
        return "a loopback address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:  # fec0::/10, deprecated but routable inside
        return "a site-local address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip in _CGNAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "not a public address"
    return None
