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
    "acl-not-evaluated": (
        "security groups: OVN evaluates the Port_Group ACLs (neutron_pg_drop, allow-related, "
        "allow-stateless); ovnsim's data path does not evaluate ACLs yet "
        "(docs/acl-engine-notes.md), so it forwards what OVN drops and vice versa."),
}

#: "topology/conversation" -> kind, measured (a conversation is listed under the
#: kind of its first differing step)
KNOWN = {
    # security-groups: conversations are listed under their first differing step
    "security-groups/app1-icmp-db1": "acl-not-evaluated",
    "security-groups/app1-icmp-fip-bastion1": "acl-not-evaluated",
    "security-groups/app1-tcp-db1": "acl-not-evaluated",
    "security-groups/app1-tcp-fip-bastion1": "acl-not-evaluated",
    "security-groups/app1-udp-db1": "acl-not-evaluated",
    "security-groups/app1-unreachable-db1": "acl-not-evaluated",
    "security-groups/bastion1-icmp-db1": "acl-not-evaluated",
    "security-groups/bastion1-icmp-fip-own": "acl-not-evaluated",
    "security-groups/bastion1-tcp-db1": "acl-not-evaluated",
    "security-groups/bastion1-tcp-fip-own": "acl-not-evaluated",
    "security-groups/bastion1-udp-db1": "acl-not-evaluated",
    "security-groups/bastion1-unreachable-db1": "acl-not-evaluated",
    "security-groups/bastion1-unreachable-outside": "acl-not-evaluated",
    "security-groups/db1-icmp-fip-bastion1": "acl-not-evaluated",
    "security-groups/db1-icmp-fw1": "acl-not-evaluated",
    "security-groups/db1-icmp-gateway": "acl-not-evaluated",
    "security-groups/db1-icmp-outside": "acl-not-evaluated",
    "security-groups/db1-icmp-web1": "acl-not-evaluated",
    "security-groups/db1-tcp-fip-bastion1": "acl-not-evaluated",
    "security-groups/db1-tcp-fw1": "acl-not-evaluated",
    "security-groups/db1-tcp-outside": "acl-not-evaluated",
    "security-groups/db1-tcp-web1": "acl-not-evaluated",
    "security-groups/db1-ttl1-outside": "acl-not-evaluated",
    "security-groups/db1-ttl1-web1": "acl-not-evaluated",
    "security-groups/db1-udp-web1": "acl-not-evaluated",
    "security-groups/db1-unreachable-outside": "acl-not-evaluated",
    "security-groups/db1-unreachable-web1": "acl-not-evaluated",
    "security-groups/fw1-icmp-db1": "acl-not-evaluated",
    "security-groups/fw1-icmp-fip-bastion1": "acl-not-evaluated",
    "security-groups/fw1-spoofed": "acl-not-evaluated",
    "security-groups/fw1-tcp-db1": "acl-not-evaluated",
    "security-groups/fw1-tcp-fip-bastion1": "acl-not-evaluated",
    "security-groups/fw1-udp-db1": "acl-not-evaluated",
    "security-groups/fw1-udp-web1": "acl-not-evaluated",
    "security-groups/fw1-unreachable-web1": "acl-not-evaluated",
    "security-groups/provnet-public-icmp-fip-bastion1": "acl-not-evaluated",
    "security-groups/provnet-public-tcp-fip-bastion1": "acl-not-evaluated",
    "security-groups/provnet-public-udp-fip-bastion1": "acl-not-evaluated",
    "security-groups/sl1-icmp-db1": "acl-not-evaluated",
    "security-groups/sl1-icmp-fip-bastion1": "acl-not-evaluated",
    "security-groups/sl1-icmp-gateway": "acl-not-evaluated",
    "security-groups/sl1-icmp-outside": "acl-not-evaluated",
    "security-groups/sl1-icmp-web1": "acl-not-evaluated",
    "security-groups/sl1-tcp-db1": "acl-not-evaluated",
    "security-groups/sl1-tcp-fip-bastion1": "acl-not-evaluated",
    "security-groups/sl1-tcp-outside": "acl-not-evaluated",
    "security-groups/sl1-tcp-web1": "acl-not-evaluated",
    "security-groups/sl1-ttl1-db1": "acl-not-evaluated",
    "security-groups/sl1-ttl1-outside": "acl-not-evaluated",
    "security-groups/sl1-udp-db1": "acl-not-evaluated",
    "security-groups/sl1-udp-outside": "acl-not-evaluated",
    "security-groups/sl1-udp-web1": "acl-not-evaluated",
    "security-groups/sl1-unreachable-db1": "acl-not-evaluated",
    "security-groups/sl1-unreachable-outside": "acl-not-evaluated",
    "security-groups/web1-icmp-db1": "acl-not-evaluated",
    "security-groups/web1-icmp-fip-bastion1": "acl-not-evaluated",
    "security-groups/web1-tcp-db1": "acl-not-evaluated",
    "security-groups/web1-tcp-fip-bastion1": "acl-not-evaluated",
    "security-groups/web1-udp-db1": "acl-not-evaluated",
    "security-groups/web1-udp-web2": "acl-not-evaluated",
    "security-groups/web1-unreachable-db1": "acl-not-evaluated",
    "security-groups/web2-icmp-db1": "acl-not-evaluated",
    "security-groups/web2-icmp-fip-bastion1": "acl-not-evaluated",
    "security-groups/web2-tcp-db1": "acl-not-evaluated",
    "security-groups/web2-tcp-fip-bastion1": "acl-not-evaluated",
    "security-groups/web2-udp-db1": "acl-not-evaluated",
    "security-groups/web2-udp-web1": "acl-not-evaluated",
    "security-groups/web2-unreachable-db1": "acl-not-evaluated",
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
