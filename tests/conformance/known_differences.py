"""Every known difference between ovnsim and real OVN's data path, in one place.

Each entry names a conversation (``topology/conversation``, see
``test_realdp_conversations.py``) whose steps differ today and the kind of
difference; the kinds say why.  The tests mark these conversations
``xfail(strict=True)``: when the engine is fixed the conversation passes,
the strict xfail fails, and the entry must be removed here.
"""

from __future__ import annotations

#: kind -> why real OVN 23.03 and ovnsim differ
KINDS = {
    "arp-held": (
        "OVN keeps the packet that made a router ARP for its next hop (pinctrl's buffered "
        "packets) and sends it once the ARP reply arrives; ovnsim drops it."),
    "router-tcp-reset": (
        "A TCP segment to a router address: OVN answers RST+ACK (ack = seq + 1, built with "
        "TTL 64 and routed back); ovnsim sends a bare RST."),
    "lldp-port-security": (
        "LLDP (01:80:c2:00:00:0e) from a port with port security is dropped by OVN "
        "(ls_in_port_sec_l2 has no flow admitting it); ovnsim floods it."),
    "hairpin-snat-reply": (
        "A VM without a floating IP reaching another VM's floating IP on the same "
        "distributed-gateway-port router: OVN loops the reply back and un-SNATs it; "
        "ovnsim drops it at lr_in_arp_resolve (nat-address)."),
    "snat-on-reply": (
        "A connection opened from outside straight to a VM's fixed address: OVN's "
        "lr_out_snat does not NAT replies (!ct.rpl); ovnsim SNATs the SYN-ACK."),
}

#: "topology/conversation" -> kind (filled from measured runs)
KNOWN: dict = {}

#: capture file (pcaps/) -> {frame number (1-based): kind}: the frames of the
#: bundled captures whose outputs differ today (test_realdp_captures.py)
CAPTURES = {
    "reference-mixed.pcap": {27: "router-tcp-reset", 34: "lldp-port-security"},
    "reference-mixed.pcapng": {27: "router-tcp-reset", 34: "lldp-port-security"},
    "reference-cut.pcap": {27: "router-tcp-reset", 34: "lldp-port-security"},
    "reference-snaplen.pcap": {27: "router-tcp-reset", 34: "lldp-port-security"},
    "two-projects-mixed.pcap": {},
    "dgp-mixed.pcap": {},
    "multi-router-mixed.pcap": {2: "arp-held"},
}
