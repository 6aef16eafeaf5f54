"""The one definition of OVN's logical pipeline stages and of ovnsim's drop dispositions.

Stage names and table numbers are those ovn-northd 23.03 gives (``ovn-sbctl
lflow-list``), so a trace from ovnsim can be held beside one from ovn-trace.
Every drop ovnsim reports carries a :class:`Drop` (a closed set) and the
:class:`Stage` where it happened.
"""

from __future__ import annotations

import enum
from typing import Dict, NamedTuple, Tuple


class Stage(NamedTuple):
    """One logical flow table: datapath kind, pipeline, table number, OVN's name."""

    datapath: str  #: "ls" or "lr"
    pipeline: str  #: "ingress" or "egress"
    table: int
    name: str  #: e.g. "ls_in_l2_lkup"


def _stages(datapath: str, pipeline: str, prefix: str, names: str) -> Tuple[Stage, ...]:
    return tuple(Stage(datapath, pipeline, i, f"{prefix}_{n}") for i, n in enumerate(names.split()))


LS_IN = _stages("ls", "ingress", "ls_in", """
    check_port_sec apply_port_sec lookup_fdb put_fdb pre_acl pre_lb pre_stateful acl_hint acl
    qos_mark qos_meter lb_aff_check lb lb_aff_learn pre_hairpin nat_hairpin hairpin acl_after_lb
    stateful arp_rsp dhcp_options dhcp_response dns_lookup dns_response external_port l2_lkup
    l2_unknown""")
LS_OUT = _stages("ls", "egress", "ls_out", """
    pre_acl pre_lb pre_stateful acl_hint acl qos_mark qos_meter stateful check_port_sec
    apply_port_sec""")
LR_IN = _stages("lr", "ingress", "lr_in", """
    admission lookup_neighbor learn_neighbor ip_input unsnat defrag lb_aff_check dnat
    lb_aff_learn ecmp_stateful nd_ra_options nd_ra_response ip_routing_pre ip_routing
    ip_routing_ecmp policy policy_ecmp arp_resolve chk_pkt_len larger_pkts gw_redirect
    arp_request""")
LR_OUT = _stages("lr", "egress", "lr_out", """
    chk_dnat_local undnat post_undnat snat post_snat egr_loop delivery""")

#: Every stage by its OVN name.
STAGES: Dict[str, Stage] = {s.name: s for s in LS_IN + LS_OUT + LR_IN + LR_OUT}


def stage(name: str) -> Stage:
    """The stage called ``name`` (KeyError for a name OVN does not have)."""
    return STAGES[name]


class Drop(enum.IntEnum):
    """Why a copy of a frame was dropped: a closed set, stable numeric codes.

    The numbers are the verdict codes the fast path returns; never reuse one.
    """

    PORT_SECURITY = 1  #: ingress port security (source MAC/IP, ARP sha/spa)
    EGRESS_PORT_SECURITY = 2  #: egress port security (destination MAC/IP)
    VLAN_TAGGED = 3  #: VLAN-tagged frame (802.1Q or 802.1ad outer tag) on a logical port
    MULTICAST_SOURCE = 4  #: eth.src has the group bit set
    PORT_DISABLED = 5  #: the logical port is administratively down
    UNKNOWN_DESTINATION = 6  #: unicast to an unknown MAC and no port takes unknown
    ADMISSION = 7  #: router: eth.dst is neither the port's MAC nor multicast
    MARTIAN = 8  #: router: impossible source/destination (own IP, loopback, 0/8, multicast source)
    ROUTER_ADDRESS = 9  #: router: IP traffic to the router itself that it does not answer
    ARP_NOT_ANSWERED = 10  #: router: ARP/ND it consumes or does not answer
    MULTICAST = 11  #: router: IP multicast is not routed
    BROADCAST = 12  #: router: L2 broadcast is not routed
    TTL_EXPIRED = 13  #: TTL 0 or 1 where OVN sends no ICMP
    NO_ROUTE = 14  #: router: no route matches the destination
    NAT_ADDRESS = 15  #: router: routed back to one of its own NAT addresses
    MALFORMED = 16  #: the frame could not be parsed (truncated, bad header)
    UNSUPPORTED = 17  #: a protocol ovnsim does not model (IPv6, ...)
    LOOP_LIMIT = 18  #: the frame crossed too many datapaths (a forwarding loop)
    SAME_PORT = 19  #: switch: unicast back to the port it came in on
    NO_OTHER_PORT = 20  #: switch: flooded, but the group holds no port besides the in-port
    NO_INGRESS = 21  #: replay --auto: no logical port could be chosen as the frame's ingress
    CONNTRACK_FULL = 22  #: a new connection found the conntrack table at its limit (``--ct-limit``)
    ACL = 23  #: switch: an ACL (a security group's neutron_pg_drop) dropped it: no rule allows it
    ACL_INVALID = 24  #: switch ACL stage: conntrack calls it invalid (an ICMP error about no known connection)
    SNAPLEN_TRUNCATED = 25  #: a header the frame had on the wire was cut by the capture's snaplen

    @property
    def label(self) -> str:
        """The disposition as printed: lower case with dashes (``port-security``)."""
        return self.name.lower().replace("_", "-")
