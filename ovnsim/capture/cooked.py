"""Linux cooked captures (``tcpdump -i any``): an Ethernet header rebuilt for every frame.

Link types 113 (``LINUX_SLL``, 16-byte header) and 276 (``LINUX_SLL2``,
20 bytes) carry no Ethernet header: they name the packet's protocol, the
*sender's* link-layer address and a packet type (to this host, broadcast,
multicast, to another host, sent by this host).  OVN switches on Ethernet
addresses, so each frame gets the header it had on the wire, rebuilt:

* ``eth.type``: the cooked header's protocol;
* ``eth.src``: the cooked header's address when it is a 6-byte (Ethernet)
  one, else ``00:00:00:00:00:00`` (the engine then drops it, as a frame no
  port owns);
* ``eth.dst``: ``ff:ff:ff:ff:ff:ff`` for broadcast; the IPv4 multicast MAC
  (``01:00:5e`` + the group's low 23 bits) for multicast; for an ARP
  request, broadcast, and for an ARP reply its target hardware address; for
  other unicast, from the topology: received by the capturing host (packet
  type 0), the MAC of the port that owns the destination IPv4 address (with
  ``--port P``: P's); sent by it or seen passing (4, 3), the MAC of the
  port or router port that owns the destination address, else of the router
  port on the source's subnet (the gateway the sender would have used).

The header is rewritten in place in the reader's buffer (14 bytes at the
end of the cooked header's 16 or 20), so no frame is copied.
"""

from __future__ import annotations

import ipaddress
from typing import Dict, List, Optional, Tuple

from ovnsim.northd.tables import parse_addresses

__all__ = ["LINKTYPE_LINUX_SLL", "LINKTYPE_LINUX_SLL2", "COOKED", "DestinationResolver", "rebuild_ethernet"]

LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
#: Cooked link types -> the length of their header.
COOKED = {LINKTYPE_LINUX_SLL: 16, LINKTYPE_LINUX_SLL2: 20}

_BROADCAST = b"\xff" * 6
_ZERO = b"\0" * 6
_ARPHRD_ETHER = 1
_ETH_ARP = 0x0806
_ETH_IP = 0x0800
# Linux packet types (the sll_pkttype of a cooked header).
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = range(5)


def _mac(text: str) -> bytes:
    return bytes(int(b, 16) for b in text.split(":"))


class DestinationResolver:
    """The destination MAC a unicast frame had on the wire, from the topology's addresses.

    ``owner`` maps every IPv4 address a VM port or router port holds to its
    MAC; ``gateways`` lists each router port's subnets with its MAC.
    ``host_mac``: the MAC of the capturing host when it is known (``--port``).
    """

    def __init__(self, logical, host_mac: Optional[str] = None):
        self.owner: Dict[int, bytes] = {}
        self.gateways: List[Tuple[ipaddress.IPv4Network, bytes]] = []
        self.host_mac = _mac(host_mac) if host_mac else None
        for ls in logical.switches:
            for port in ls.ports:
                if port.type:
                    continue
                for entry in port.addresses:
                    mac, ips = parse_addresses(entry)
                    for ip in ips:
                        self.owner.setdefault(ip, mac.to_bytes(6, "big"))
        for router in logical.routers:
            for lrp in router.ports:
                for network in lrp.networks:
                    if ":" in network:
                        continue
                    iface = ipaddress.IPv4Interface(network)
                    self.owner.setdefault(int(iface.ip), _mac(lrp.mac))
                    self.gateways.append((iface.network, _mac(lrp.mac)))

    def unicast(self, pkttype: int, src_ip: int, dst_ip: int) -> bytes:
        """The destination MAC of a unicast IPv4 packet of Linux packet type ``pkttype``."""
        if pkttype == PACKET_HOST and self.host_mac is not None:
            return self.host_mac
        owner = self.owner.get(dst_ip)
        if owner is not None and (pkttype == PACKET_HOST or self._same_subnet(src_ip, dst_ip)):
            return owner
        if pkttype != PACKET_HOST:
            for network, mac in self.gateways:
                if src_ip in _Contains(network):
                    return mac
        return owner or _ZERO

    def _same_subnet(self, a: int, b: int) -> bool:
        return any(a in _Contains(n) and b in _Contains(n) for n, _mac in self.gateways) or not self.gateways


class _Contains:
    """``int in _Contains(network)`` without building an address object per test."""

    __slots__ = ("lo", "hi")

    def __init__(self, network: ipaddress.IPv4Network):
        self.lo = int(network.network_address)
        self.hi = int(network.broadcast_address)

    def __contains__(self, value: int) -> bool:
        return self.lo <= value <= self.hi


def rebuild_ethernet(buf, offsets, lengths, origlens, indices, linktypes, resolver: Optional[DestinationResolver]
                     ) -> int:
    """Rewrite the cooked frames ``indices`` of a batch as Ethernet frames, in place.

    ``linktypes[k]`` is the link type of frame ``indices[k]``.  The arrays
    are a :class:`~ovnsim.capture.pcap.Batch`'s; ``buf`` its (writable)
    data.  A frame too short to hold its cooked header becomes empty (the
    engine drops it as malformed).  Returns how many frames were rebuilt.
    """
    done = 0
    for k, i in enumerate(indices):
        hdr = COOKED[linktypes[k]]
        at, caplen = offsets[i], lengths[i]
        if caplen < hdr:
            lengths[i] = 0
            origlens[i] = max(0, origlens[i] - caplen)
            continue
        head = bytes(buf[at:at + hdr])
        if hdr == 16:
            pkttype = int.from_bytes(head[0:2], "big")
            hatype = int.from_bytes(head[2:4], "big")
            alen = int.from_bytes(head[4:6], "big")
            addr = head[6:14]
            proto = head[14:16]
        else:
            proto = head[0:2]
            hatype = int.from_bytes(head[8:10], "big")
            pkttype = head[10]
            alen = head[11]
            addr = head[12:20]
        src = addr[:6] if hatype == _ARPHRD_ETHER and alen == 6 else _ZERO
        payload = bytes(buf[at + hdr:at + min(caplen, hdr + 28)])
        dst = _destination(pkttype, int.from_bytes(proto, "big"), payload, resolver)
        start = at + hdr - 14
        buf[start:start + 14] = dst + src + proto
        offsets[i] = start
        lengths[i] = caplen - hdr + 14
        origlens[i] = max(origlens[i] - hdr + 14, lengths[i])
        done += 1
    return done


def _destination(pkttype: int, ethertype: int, payload: bytes, resolver: Optional[DestinationResolver]) -> bytes:
    if pkttype == PACKET_BROADCAST:
        return _BROADCAST
    if ethertype == _ETH_ARP and len(payload) >= 28:
        return _BROADCAST if payload[7] == 1 else payload[18:24]
    if ethertype != _ETH_IP or len(payload) < 20:
        return _BROADCAST if pkttype == PACKET_BROADCAST else _ZERO
    src_ip = int.from_bytes(payload[12:16], "big")
    dst_ip = int.from_bytes(payload[16:20], "big")
    if pkttype == PACKET_MULTICAST or 0xE0000000 <= dst_ip <= 0xEFFFFFFF:
        return b"\x01\x00\x5e" + (dst_ip & 0x7FFFFF).to_bytes(3, "big")
    if dst_ip == 0xFFFFFFFF:
        return _BROADCAST
    return resolver.unicast(pkttype, src_ip, dst_ip) if resolver is not None else _ZERO
