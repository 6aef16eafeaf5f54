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
    "hairpin-snat-reply": (
        "A VM without a floating IP reaching another VM's floating IP on the same "
        "distributed-gateway-port router: OVN loops the reply back and un-SNATs it; "
        "ovnsim drops it at lr_in_arp_resolve (nat-address)."),
    "snat-on-reply": (
        "A connection opened from outside straight to a VM's fixed address: OVN's "
        "lr_out_snat does not NAT replies (!ct.rpl); ovnsim SNATs the SYN-ACK."),
}

#: "topology/conversation" -> kind, measured (a conversation is listed under the
#: kind of its first differing step)
KNOWN = {
    "dgp/fw1-icmp-fip-app1": "hairpin-snat-reply",
    "dgp/fw1-icmp-fip-web1": "hairpin-snat-reply",
    "dgp/fw1-tcp-fip-app1": "hairpin-snat-reply",
    "dgp/fw1-tcp-fip-web1": "hairpin-snat-reply",
    "dgp/web2-icmp-fip-app1": "hairpin-snat-reply",
    "dgp/web2-icmp-fip-web1": "hairpin-snat-reply",
    "dgp/web2-tcp-fip-app1": "hairpin-snat-reply",
    "dgp/web2-tcp-fip-web1": "hairpin-snat-reply",
    "provider-ports/app2-icmp-fip-app1": "hairpin-snat-reply",
    "provider-ports/app2-tcp-fip-app1": "hairpin-snat-reply",
    "dgp/provnet-public-tcp-fixed-web2": "snat-on-reply",
    "dhcp-metadata/provnet-public-tcp-fixed-web1": "snat-on-reply",
    "dhcp-metadata/provnet-public-tcp-fixed-web2": "snat-on-reply",
    "multi-router/provnet-upstream-tcp-fixed-web1": "snat-on-reply",
    "reference/provnet-public-tcp-fixed-vm1": "snat-on-reply",
    "reference/provnet-public-tcp-fixed-vm2": "snat-on-reply",
    "two-projects/provnet-public-tcp-fixed-alpha-vm1": "snat-on-reply",
    "two-projects/provnet-public-tcp-fixed-alpha-vm2": "snat-on-reply",
    "security-groups/provnet-public-tcp-fixed-web1": "snat-on-reply",
    "security-groups/provnet-public-tcp-fixed-web2": "snat-on-reply",
}

#: capture file (pcaps/) -> {frame number (1-based): kind}: the frames of the
#: bundled captures whose outputs differ today (test_realdp_captures.py)
CAPTURES = {
    "reference-mixed.pcap": {},
    "reference-mixed.pcapng": {},
    "reference-cut.pcap": {},
    "reference-snaplen.pcap": {},
    "two-projects-mixed.pcap": {},
    "dgp-mixed.pcap": {},
    "multi-router-mixed.pcap": {},
    "dhcp-metadata-mixed.pcap": {},
}
