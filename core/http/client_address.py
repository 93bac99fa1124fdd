"""Who is calling: the address a team key's IP allow-list is checked against.

The connecting (socket) address is the client, unless it is one of the proxies listed in
``QUORUM_TRUSTED_PROXIES``: then ``X-Forwarded-For`` is read from the right, skipping
trusted proxies, and the first address that is not one of them is the client (anything
further left was written by that untrusted party and proves nothing). With no trusted
proxies, the default, forwarding headers are ignored: anybody can send one.

This decision is Quorum's, not the ASGI server's. uvicorn (under Streamlit too) replaces
the connecting address with the forwarded one for any caller on loopback by default, so
``quorum run`` turns that off (pages.ui.server). Served some other way with it on, the
replaced address shows up as one of the header's own entries; that request's address
counts as unknown (an allow-listed key is refused) rather than believed.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence

from starlette.requests import Request

from core.settings import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_log = logging.getLogger("quorum.http")
_warned = False


def client_address(request: Request) -> str | None:
    """The client's IP address for this request, or None when it cannot be known."""
    peer = request.client.host if request.client else None
    forwarded = request.headers.getlist("x-forwarded-for")
    return resolve_client(peer, forwarded, settings().trusted_proxies)


def resolve_client(peer: str | None, forwarded: Sequence[str], trusted: Iterable[Network]) -> str | None:
    """The client behind ``peer`` given the X-Forwarded-For values and the trusted proxies."""
    trusted = tuple(trusted)
    hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
    peer_address = _address(peer)
    if peer_address is None:
        return None
    if hops and str(peer_address) in {str(a) for a in map(_address, hops) if a is not None}:
        _warn_replaced()
        return None
    if not _is_trusted(peer_address, trusted):
        return str(peer_address)
    client = peer_address
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return None  # a trusted proxy passed on something that is not an address
        client = address
        if not _is_trusted(address, trusted):
            break
    return str(client)


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address from a socket host or a header entry ('1.2.3.4:5678', '[::1]:80')."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 callers as ::ffff:a.b.c.d; IPv4 lists must match them.
    return getattr(address, "ipv4_mapped", None) or address


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: tuple[Network, ...]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def _warn_replaced() -> None:
    global _warned
    if not _warned:
        _warned = True
        _log.warning(
            "The server replaced the client address with one from X-Forwarded-For; such requests "
            "count as coming from an unknown address. Serve with 'quorum run', or turn the server's "
            "proxy headers off and list proxies in QUORUM_TRUSTED_PROXIES."
        )
