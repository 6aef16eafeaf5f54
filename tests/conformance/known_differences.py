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

#: "topology/conversation" -> kind, measured (a conversation is listed under the
#: kind of its first differing step)
KNOWN = {
    "multi-router/app1-tcp-gateway": "router-tcp-reset",
    "multi-router/app2-tcp-gateway": "router-tcp-reset",
    "multi-router/db1-tcp-gateway": "router-tcp-reset",
    "multi-router/fw1-tcp-gateway": "router-tcp-reset",
    "multi-router/lab1-tcp-gateway": "router-tcp-reset",
    "multi-router/lab2-tcp-gateway": "router-tcp-reset",
    "multi-router/web1-tcp-gateway": "router-tcp-reset",
    "reference/db1-tcp-gateway": "router-tcp-reset",
    "reference/vm1-tcp-gateway": "router-tcp-reset",
    "reference/vm2-tcp-gateway": "router-tcp-reset",
    "two-projects/alpha-vm1-tcp-gateway": "router-tcp-reset",
    "two-projects/alpha-vm2-tcp-gateway": "router-tcp-reset",
    "two-projects/beta-vm1-tcp-gateway": "router-tcp-reset",
    "two-projects/beta-vm2-tcp-gateway": "router-tcp-reset",
    "dgp/app1-lldp": "lldp-port-security",
    "dgp/web1-lldp": "lldp-port-security",
    "dgp/web2-lldp": "lldp-port-security",
    "dhcp-metadata/db1-lldp": "lldp-port-security",
    "dhcp-metadata/web1-lldp": "lldp-port-security",
    "dhcp-metadata/web2-lldp": "lldp-port-security",
    "multi-router/app1-lldp": "lldp-port-security",
    "multi-router/app2-lldp": "lldp-port-security",
    "multi-router/fw1-lldp": "lldp-port-security",
    "multi-router/lab1-lldp": "lldp-port-security",
    "provider-ports/app1-lldp": "lldp-port-security",
    "provider-ports/app2-lldp": "lldp-port-security",
    "provider-ports/bastion-lldp": "lldp-port-security",
    "provider-ports/pub-db-lldp": "lldp-port-security",
    "reference/vm1-lldp": "lldp-port-security",
    "reference/vm2-lldp": "lldp-port-security",
    "two-projects/alpha-vm1-lldp": "lldp-port-security",
    "two-projects/alpha-vm2-lldp": "lldp-port-security",
    "two-projects/beta-vm1-lldp": "lldp-port-security",
    "two-projects/beta-vm2-lldp": "lldp-port-security",
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
    "security-groups/app1-lldp": "lldp-port-security",
    "security-groups/bastion1-lldp": "lldp-port-security",
    "security-groups/db1-lldp": "lldp-port-security",
    "security-groups/sl1-lldp": "lldp-port-security",
    "security-groups/web1-lldp": "lldp-port-security",
    "security-groups/web2-lldp": "lldp-port-security",
    "security-groups/provnet-public-tcp-fixed-web1": "snat-on-reply",
    "security-groups/provnet-public-tcp-fixed-web2": "snat-on-reply",
}

#: capture file (pcaps/) -> {frame number (1-based): kind}: the frames of the
#: bundled captures whose outputs differ today (test_realdp_captures.py)
CAPTURES = {
    "reference-mixed.pcap": {27: "router-tcp-reset", 34: "lldp-port-security"},
    "reference-mixed.pcapng": {27: "router-tcp-reset", 34: "lldp-port-security"},
    "reference-cut.pcap": {27: "router-tcp-reset", 34: "lldp-port-security"},
    "reference-snaplen.pcap": {27: "router-tcp-reset", 34: "lldp-port-security"},
    "two-projects-mixed.pcap": {},
    "dgp-mixed.pcap": {},
    "multi-router-mixed.pcap": {},
    "dhcp-metadata-mixed.pcap": {},
}
