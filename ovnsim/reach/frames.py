"""The frames a question sends: a sender's first packet, and the reply its peer's stack builds.

One definition of both, used by the per-question API (:func:`ovnsim.reach.reach`)
and by the batch matrix (which stamps the same layout into many frames at
once and is tested to produce the same bytes).

Layout: Ethernet (14) + IPv4 without options (20) + TCP (20, SYN) / UDP (8,
4 bytes payload) / ICMP echo (8, 4 bytes payload); TTL 64; source port
:data:`SPORT`; ICMP identifier :data:`ICMP_ID`.
"""

from __future__ import annotations

import ipaddress
import struct

from ovnsim.datapath.packet import checksum
from ovnsim.reach.endpoints import Protocol

__all__ = ["SPORT", "ICMP_ID", "TTL", "build_request", "build_reply", "mac_bytes"]

#: The ephemeral source port a question's TCP/UDP first packet carries.
SPORT = 40000
#: The identifier of a question's ICMP echo request.
ICMP_ID = 0x4F56
#: The TTL senders use (Linux's default).
TTL = 64

TCP_SYN, TCP_ACK = 0x02, 0x10
PROTO_NUM = {"icmp": 1, "tcp": 6, "udp": 17}
PAYLOAD = b"ovns"


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _l4(proto: str, src: bytes, dst: bytes, sport: int, dport: int, flags: int, icmp_type: int,
        seq: int = 0, ack: int = 0) -> bytes:
    if proto == "icmp":
        body = struct.pack("!BBHHH", icmp_type, 0, 0, ICMP_ID, 1) + PAYLOAD
        return body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    if proto == "udp":
        length = 8 + len(PAYLOAD)
        body = struct.pack("!HHHH", sport, dport, length, 0) + PAYLOAD
        csum = checksum(src + dst + struct.pack("!BBH", 0, 17, length) + body) or 0xFFFF
        return body[:6] + struct.pack("!H", csum) + body[8:]
    body = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    csum = checksum(src + dst + struct.pack("!BBH", 0, 6, len(body)) + body)
    return body[:16] + struct.pack("!H", csum) + body[18:]


def _frame(eth_src: bytes, eth_dst: bytes, src: bytes, dst: bytes, proto: str, l4: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, TTL, PROTO_NUM[proto], 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return eth_dst + eth_src + b"\x08\x00" + ip + l4


def build_request(eth_src: str, eth_dst: str, ip_src: ipaddress.IPv4Address, ip_dst: ipaddress.IPv4Address,
                  proto: Protocol) -> bytes:
    """A TCP SYN, a UDP datagram or an ICMP echo request, as a sender's stack builds it."""
    src, dst = ip_src.packed, ip_dst.packed
    l4 = _l4(proto.name, src, dst, SPORT, proto.port, TCP_SYN, 8, seq=1000)
    return _frame(mac_bytes(eth_src), mac_bytes(eth_dst), src, dst, proto.name, l4)


def build_reply(received: bytes) -> bytes:
    """What the receiver of ``received`` answers: a SYN-ACK, a UDP reply or an echo reply.

    Addressed back from what it received (MACs, addresses and ports
    swapped), as a host's stack does: the next hop it answers through is
    the one the request came from.
    """
    eth_dst, eth_src = received[0:6], received[6:12]
    ihl = (received[14] & 0x0F) * 4
    proto_num = received[23]
    src, dst = received[26:30], received[30:34]
    l4 = received[14 + ihl:]
    if proto_num == 1:
        body = _l4("icmp", dst, src, 0, 0, 0, 0)
        # the echo reply quotes the request's identifier and sequence
        body = body[:4] + l4[4:8] + PAYLOAD
        body = body[:2] + b"\0\0" + body[4:]
        body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
        return _frame(eth_dst, eth_src, dst, src, "icmp", body)
    sport, dport = struct.unpack("!HH", l4[:4])
    if proto_num == 17:
        return _frame(eth_dst, eth_src, dst, src, "udp", _l4("udp", dst, src, dport, sport, 0, 0))
    seq = struct.unpack("!I", l4[4:8])[0]
    body = _l4("tcp", dst, src, dport, sport, TCP_SYN | TCP_ACK, 0, seq=5000, ack=(seq + 1) & 0xFFFFFFFF)
    return _frame(eth_dst, eth_src, dst, src, "tcp", body)


def build_arp_reply(request: bytes, mac: str) -> bytes:
    """The ARP reply a host with ``mac`` sends to the ARP ``request`` for its address."""
    sha, spa, tpa = request[22:28], request[28:32], request[38:42]
    me = mac_bytes(mac)
    return sha + me + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + me + tpa + sha + spa
