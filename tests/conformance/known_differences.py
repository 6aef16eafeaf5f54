"""Every known difference between ovnsim and real OVN's data path, in one place.

Each entry names a conversation (``topology/conversation``, see
``test_realdp_conversations.py``) whose steps differ today and the kind of
difference; the kinds say why.  The tests mark these conversations
``xfail(strict=True)``: when the engine is fixed the conversation passes,
the strict xfail fails, and the entry must be removed here.
"""

from __future__ import annotations

#: kind -> why real OVN 23.03 and ovnsim differ (none known today: the five kinds
#: issue 13 listed -- packets held during ARP resolution, the router TCP reset,
#: LLDP from a port with port security, the hairpin reply through a SNAT address,
#: SNAT of a reply -- and the ACLs are modelled)
KINDS: dict = {
}

#: "topology/conversation" -> kind, measured (a conversation is listed under the
#: kind of its first differing step)
KNOWN: dict = {
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
