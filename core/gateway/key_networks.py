"""The network a team key's call comes from, for the detector of a key used from a network
it never was (core.anomalies.networks).

Only the network prefix is kept (IPv4 /24, IPv6 /48), never the full address: a client's
address is personal data, and the prefix is all the detector needs (a new office, cloud
region or country shows up as a new prefix; a laptop's next DHCP lease does not). The HTTP
door reduces the address to its prefix before the call starts (`network_of`), so the full
address reaches neither the call's state nor the database.

A settled call keeps its prefix until the fold of its roll-ups adds it to its key's networks
(core/budgets/key_networks.py: first seen, last seen, calls per key and network).
"""

from __future__ import annotations

import ipaddress

IPV4_PREFIX = 24
IPV6_PREFIX = 48


def network_of(address: str | None) -> str | None:
    """The address's network prefix ("203.0.113.0/24", "2001:db8:1::/48"), or None when it is
    missing or not an IP address."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    mapped = getattr(parsed, "ipv4_mapped", None)  # ::ffff:a.b.c.d is an IPv4 caller
    if mapped is not None:
        parsed = mapped
    if parsed.version == 4:
        a, b, c, _ = parsed.packed
        return f"{a}.{b}.{c}.0/{IPV4_PREFIX}"
    # The address with its host bits cleared, written as ipaddress writes it (about 3x
    # cheaper than building an ip_network on every call).
    host_bits = 128 - IPV6_PREFIX
    return f"{ipaddress.IPv6Address(int(parsed) >> host_bits << host_bits)}/{IPV6_PREFIX}"
