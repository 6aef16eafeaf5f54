"""The frames a question sends: a sender's first packet, and the reply its peer's stack builds.

One definition (:func:`stamp`, vectorised with numpy) of both, used by the
per-question API (one frame) and by the batch matrix (a million at once).

Layout: Ethernet (14) + IPv4 without options (20, DF, id 0, TTL 64) + TCP
(20: SYN from :data:`SPORT`, or SYN-ACK) / UDP (8 + 4 bytes payload) / ICMP
echo (8 + 4 bytes payload, identifier :data:`ICMP_ID`).  Checksums are right.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from typing import Tuple

import numpy as np

from ovnsim.reach.endpoints import Protocol

__all__ = ["SPORT", "ICMP_ID", "TTL", "FRAME_LEN", "stamp", "build_request", "build_reply", "reply_fields",
           "mac_bytes", "build_arp_reply"]

#: The ephemeral source port a question's TCP/UDP first packet carries.
SPORT = 40000
#: The identifier of a question's ICMP echo request.
ICMP_ID = 0x4F56
#: The TTL senders use (Linux's default).
TTL = 64
#: The sequence numbers of the SYN and of the SYN-ACK.
SYN_SEQ, SYNACK_SEQ = 1000, 5000

TCP_SYN, TCP_ACK = 0x02, 0x10
PROTO_NUM = {"icmp": 1, "tcp": 6, "udp": 17}
PAYLOAD = b"ovns"
L4_LEN = {"tcp": 20, "udp": 8 + len(PAYLOAD), "icmp": 8 + len(PAYLOAD)}
#: Frame length per protocol.
FRAME_LEN = {p: 34 + n for p, n in L4_LEN.items()}


def mac_bytes(mac: str) -> bytes:
    """``"fa:16:3e:00:00:11"`` as 6 bytes."""
    return bytes.fromhex(mac.replace(":", ""))


def _fold(total: np.ndarray) -> np.ndarray:
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def _words(block: np.ndarray) -> np.ndarray:
    """Sum of the big-endian 16-bit words of each row (even width)."""
    b = block.astype(np.uint32)
    return (b[:, 0::2] << 8).sum(axis=1, dtype=np.uint64) + b[:, 1::2].sum(axis=1, dtype=np.uint64)


def _put_u16(frames: np.ndarray, at: int, values) -> None:
    # each value (< 2**16) as 2 big-endian bytes, one assignment for every row
    frames[:, at:at + 2] = np.asarray(values).astype(">u2").view(np.uint8).reshape(-1, 2)


def _put_u32(frames: np.ndarray, at: int, values) -> None:
    # each value (< 2**32) as 4 big-endian bytes
    frames[:, at:at + 4] = np.asarray(values).astype(">u4").view(np.uint8).reshape(-1, 4)


@functools.lru_cache(maxsize=None)
def _template(proto: str, reply: bool) -> np.ndarray:
    """The constant bytes of a frame (every varying field and checksum zero); read-only, made once."""
    length = FRAME_LEN[proto]
    t = np.zeros(length, dtype=np.uint8)
    t[12], t[13], t[14] = 0x08, 0x00, 0x45
    t[16], t[17] = (length - 14) >> 8, (length - 14) & 0xFF
    t[20], t[22], t[23] = 0x40, TTL, PROTO_NUM[proto]  # DF, TTL, protocol
    if proto == "icmp":
        t[34] = 0 if reply else 8
        t[42:] = np.frombuffer(PAYLOAD, dtype=np.uint8)
    elif proto == "udp":
        t[38], t[39] = 0, L4_LEN["udp"]
        t[42:] = np.frombuffer(PAYLOAD, dtype=np.uint8)
    else:
        t[46], t[47] = 5 << 4, (TCP_SYN | TCP_ACK) if reply else TCP_SYN
        t[48], t[49] = 0xFF, 0xFF  # window 65535
    t.setflags(write=False)
    return t


@functools.lru_cache(maxsize=None)
def _const_sum(proto: str, reply: bool, lo: int, hi: int) -> int:
    """The sum of the 16-bit words of bytes ``lo:hi`` of the template (its share of a checksum)."""
    return int(_words(_template(proto, reply)[lo:hi].reshape(1, -1))[0])


def _split(values) -> np.ndarray:
    """The sum of the two 16-bit halves of 32-bit values (their share of a checksum)."""
    v = np.asarray(values, dtype=np.uint64)
    return (v >> np.uint64(16)) + (v & np.uint64(0xFFFF))


def stamp(proto: str, eth_src: np.ndarray, eth_dst: np.ndarray, ip_src, ip_dst, sport, dport,
          reply: bool, seq=None, ack=None) -> np.ndarray:
    """N frames (an (N, FRAME_LEN[proto]) uint8 array): requests, or replies when ``reply``.

    ``eth_src``/``eth_dst``: (N, 6) uint8; ``ip_src``/``ip_dst``: N IPv4
    addresses as integers; ``sport``/``dport``: the L4 ports (ICMP: the echo
    identifier and sequence number); ``seq``/``ack``: TCP's (default: a
    SYN's, or with ``reply`` the SYN-ACK's ``ack`` must be given).
    Checksums are the constant bytes' sum (once) plus the varying fields'.
    """
    n = len(eth_src)
    t = _template(proto, reply)
    f = np.empty((n, len(t)), dtype=np.uint8)
    f[:] = t
    f[:, 0:6] = eth_dst
    f[:, 6:12] = eth_src
    ip_src = np.asarray(ip_src, dtype=np.uint64)
    ip_dst = np.asarray(ip_dst, dtype=np.uint64)
    sport = np.asarray(sport, dtype=np.uint64)
    dport = np.asarray(dport, dtype=np.uint64)
    _put_u32(f, 26, ip_src)
    _put_u32(f, 30, ip_dst)
    addresses = _split(ip_src) + _split(ip_dst)
    _put_u16(f, 24, _fold(np.uint64(_const_sum(proto, reply, 14, 34)) + addresses))
    l4 = 34
    if proto == "icmp":
        _put_u16(f, l4 + 4, sport)
        _put_u16(f, l4 + 6, dport)
        _put_u16(f, l4 + 2, _fold(np.uint64(_const_sum(proto, reply, l4, len(t))) + sport + dport))
        return f
    _put_u16(f, l4, sport)
    _put_u16(f, l4 + 2, dport)
    pseudo = addresses + np.uint64(PROTO_NUM[proto] + L4_LEN[proto])
    if proto == "udp":
        csum = _fold(pseudo + np.uint64(_const_sum(proto, reply, l4, len(t))) + sport + dport)
        _put_u16(f, l4 + 6, np.where(csum == 0, 0xFFFF, csum))
        return f
    seq = np.full(n, SYNACK_SEQ if reply else SYN_SEQ, dtype=np.uint64) if seq is None else \
        np.asarray(seq, dtype=np.uint64)
    ack = np.zeros(n, dtype=np.uint64) if ack is None else np.asarray(ack, dtype=np.uint64)
    _put_u32(f, l4 + 4, seq)
    _put_u32(f, l4 + 8, ack)
    _put_u16(f, l4 + 16, _fold(pseudo + np.uint64(_const_sum(proto, reply, l4, len(t))) + sport + dport
                               + _split(seq) + _split(ack)))
    return f


def _u8(mac: bytes) -> np.ndarray:
    return np.frombuffer(mac, dtype=np.uint8).reshape(1, 6)


def build_request(eth_src: str, eth_dst: str, ip_src: ipaddress.IPv4Address, ip_dst: ipaddress.IPv4Address,
                  proto: Protocol) -> bytes:
    """A TCP SYN, a UDP datagram or an ICMP echo request (sequence 1), as a sender's stack builds it."""
    sport, dport = (ICMP_ID, 1) if proto.name == "icmp" else (SPORT, proto.port)
    return stamp(proto.name, _u8(mac_bytes(eth_src)), _u8(mac_bytes(eth_dst)), [int(ip_src)], [int(ip_dst)],
                 [sport], [dport], reply=False).tobytes()


def reply_fields(received: np.ndarray) -> Tuple[str, tuple]:
    """The :func:`stamp` arguments of the replies to ``received`` ((N, len) uint8 frames of one protocol)."""
    proto = {1: "icmp", 6: "tcp", 17: "udp"}[int(received[0, 23])]

    def u16(at):  # the big-endian 16-bit field at byte `at` of each frame
        return np.ascontiguousarray(received[:, at:at + 2]).view(">u2")[:, 0].astype(np.uint64)

    def u32(at):
        return np.ascontiguousarray(received[:, at:at + 4]).view(">u4")[:, 0].astype(np.uint64)

    eth_src, eth_dst = received[:, 0:6], received[:, 6:12]  # swapped: answered back the way it came
    ip_src, ip_dst = u32(30), u32(26)
    if proto == "icmp":
        return proto, (eth_src, eth_dst, ip_src, ip_dst, u16(38), u16(40), True)
    args = (eth_src, eth_dst, ip_src, ip_dst, u16(36), u16(34), True)
    if proto == "tcp":
        return proto, args + (None, (u32(38) + 1) & 0xFFFFFFFF)
    return proto, args


def build_reply(received: bytes) -> bytes:
    """What the receiver of ``received`` answers: a SYN-ACK, a UDP reply or an echo reply.

    Addressed back from what it received (MACs, addresses and ports
    swapped), as a host's stack does: the next hop it answers through is
    the one the request came from.
    """
    proto, args = reply_fields(np.frombuffer(received[:FRAME_LEN[_proto_of(received)]], dtype=np.uint8)
                               .reshape(1, -1))
    return stamp(proto, *args).tobytes()


def _proto_of(frame: bytes) -> str:
    return {1: "icmp", 6: "tcp", 17: "udp"}[frame[23]]


def build_arp_reply(request: bytes, mac: str) -> bytes:
    """The ARP reply a host with ``mac`` sends to the ARP ``request`` for its address."""
    sha, spa, tpa = request[22:28], request[28:32], request[38:42]
    me = mac_bytes(mac)
    return sha + me + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + me + tpa + sha + spa
