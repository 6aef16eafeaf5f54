"""The one catalogue of the logical-flow rules ovnsim's data path executes.

Each :class:`Rule` is one logical flow as ``ovn-sbctl lflow-list`` shows it
(stage, priority, match, actions), or one of the few steps OVN has no flow
for that ovnsim still reports (an output, a parse drop, the hop limit).  The
engine (``ovnsim.datapath._fastpath``) does not carry text: when tracing, it
records the rule's code and up to two values per step, and
:mod:`ovnsim.datapath.trace` renders the record with the rule's templates.
The C side gets its rule, stage and drop codes from ``_rules.pxi``, which
``python -m ovnsim.northd.rules`` generates from this module (a test checks
that the committed file is what it generates), so the two cannot disagree.

Templates are OVN's text with ``${name}`` (or ``${name.attr}``) where a
value of the step goes; :data:`ARGS` says what each value is.  The
priority is an int, ``None`` (no flow: ovnsim's own step) or a template for
rules whose priority comes from the table entry (routes, SNAT rows).
Where ovnsim does not model a flow's full text (a comment in the actions
says what the step did, e.g. ``/* un-NAT (reply) */``), the text is
ovn-trace's, not lflow-list's.  ``tests/conformance/test_rule_text.py``
holds every traced step's text beside real ``lflow-list`` output and lists,
with the reason, the rules whose text differs.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple, Union

from ovnsim.northd.stages import LR_IN, LR_OUT, LS_IN, LS_OUT, Drop, Stage

__all__ = ["Rule", "RULES", "RULE_CODE", "STAGE_LIST", "STAGE_CODE", "ARGS", "OUTPUT_KINDS", "DHCP_RESULTS",
           "generate_pxi"]

#: Stages by code (the engine's stage numbers): OVN's stages in pipeline order.
STAGE_LIST: Tuple[Stage, ...] = LS_IN + LS_OUT + LR_IN + LR_OUT
STAGE_CODE: Dict[str, int] = {s.name: i for i, s in enumerate(STAGE_LIST)}


class Rule(NamedTuple):
    """One step the engine can take, with OVN's text for it."""

    name: str  #: code name (``R_<name>`` in C)
    stage: str  #: OVN stage name
    priority: Union[int, str, None]
    match: str
    actions: str
    drop: Optional[Drop] = None  #: the disposition when the step drops the copy
    args: Tuple[str, ...] = ()  #: "name:kind" of the record's values a (32 bits) and b (64 bits), see ARGS
    detail: str = ""  #: the drop's detail, a template as match/actions
    event: bool = True  #: False: a drop that shows in no trace (the frame never entered a stage)
    #: The header fields the actions set, in OVN's order, as ``ovn-trace --minimal`` lists them:
    #: (field, value template); the value "@" is the field's value in the output frame, "<f" the
    #: value field f had before the step (a swap), None a decrement (``ip.ttl--``); a first entry
    #: ("{", kind) opens a block (a generated packet, a clone); ("!", text) is a line printed as it is.
    writes: Tuple[Tuple[str, Optional[str]], ...] = ()


#: What a record value can be, and how the renderer turns it into text.
ARGS = {
    "ip": "an IPv4 address (dotted quad)",
    "mac": "a MAC address",
    "lsp": "a logical switch port (index into the engine's port names)",
    "lrp": "a logical router port (its name; .mac: its MAC)",
    "nat": "a NAT row (.external_ip, .logical, .logical_ip, .external_mac)",
    "route": "an lr_in_ip_routing entry (.priority, .prefix, .src_ip, .src_mac, .outport)",
    "snat": "an lr_out_snat entry (.priority, .priority1, .logical, .external_ip)",
    "portmac": "a router port and a MAC packed as port << 48 | mac (.port, .mac)",
    "rnet": "a network of a router port (index into the engine's router networks; .ip, .prefix)",
    "martian": "a martian source of the router (.ip, .broadcast)",
    "binding": "a MAC, or 0 for no MAC binding",
    "ct": "what a ct_snat/ct_dnat did (outcome, new source port, address)",
    "parse": "why a frame could not be parsed (a PARSE_* problem code)",
    "acl": "an ACL row (.priority: its flow priority, .match)",
    "aclwhy": ("a drop ACL and the dropped packet: ACL row << 48 | port << 32 | ip.proto << 24 | ICMP code << 16 | "
               "destination port or ICMP type (.priority, .match, .text: the security group rule it would need)"),
    "ctstate": "the ct_state flags a ct_next loaded (new, est, rpl, rel, inv, trk)",
    "int": "a number",
    "dhcp": "a native DHCPv4 responder (index into the engine's responders; .port, .mac, .offerip, "
            ".server_id, .server_mac, .options)",
    "dhcp_result": "what ovn-controller's put_dhcp_opts did (a DHCP_RESULTS code)",
}

_DROP = "drop;"
#: The in-place ARP reply of a responder (ls_in_arp_rsp, lr_in_ip_input), in its actions' order.
_ARP_REPLY = (("eth.dst", "@"), ("eth.src", "@"), ("arp.op", "2"), ("arp.tha", "@"), ("arp.sha", "@"),
              ("arp.tpa", "@"), ("arp.spa", "@"))

#: put_dhcp_opts as ovn-trace --minimal prints it ("!": a line printed as it is).
_PUT_DHCP_OPTS = (("!", "/* We assume that this packet is DHCPDISCOVER or DHCPREQUEST. */;"),
                  ("!", "put_dhcp_opts(offerip = ${dhcp.offerip}, ${dhcp.trace_options});"))

RULES: Tuple[Rule, ...] = (
    # -- logical switch ingress -------------------------------------------------
    Rule("LS_IN_LOOP_LIMIT", "ls_in_check_port_sec", None, "", _DROP, Drop.LOOP_LIMIT),
    Rule("LS_IN_MCAST_SRC", "ls_in_check_port_sec", 100, "eth.src[40]", _DROP, Drop.MULTICAST_SOURCE),
    Rule("LS_IN_VLAN", "ls_in_check_port_sec", 100, "vlan.present", _DROP, Drop.VLAN_TAGGED),
    Rule("LS_IN_PORT_DISABLED", "ls_in_check_port_sec", 100, 'inport == "${inport}"', _DROP, Drop.PORT_DISABLED,
         ("inport:lsp",)),
    Rule("LS_IN_PORT_SEC_DROP", "ls_in_apply_port_sec", 50, "reg0[15] == 1", _DROP, Drop.PORT_SECURITY,
         ("inport:lsp",), detail="${inport}: source not allowed by port_security"),
    Rule("LS_IN_PORT_SEC", "ls_in_check_port_sec", 50, "1", "reg0[15] = check_in_port_sec(); next;"),
    Rule("LS_IN_ARP_RSP", "ls_in_arp_rsp", 50, "arp.tpa == ${tpa} && arp.op == 1",
         "ARP reply from ${mac}; outport = inport; output;", args=("tpa:ip", "mac:mac"),
         writes=_ARP_REPLY),
    Rule("LS_IN_L2_ARP_ROUTER", "ls_in_l2_lkup", 80, "flags[1] == 0 && arp.op == 1 && arp.tpa == ${tpa}",
         'clone {outport = "${port}"; output; }; outport = "_MC_flood_l2"; output;', args=("tpa:ip", "port:lsp")),
    Rule("LS_IN_L2_ROUTER_SRC", "ls_in_l2_lkup", 75, "eth.src == ${mac} && arp.op == 1",
         'outport = "_MC_flood_l2"; output;', args=("_:int", "mac:mac")),
    Rule("LS_IN_L2_MCAST", "ls_in_l2_lkup", 70, "eth.mcast", 'outport = "_MC_flood"; output;'),
    Rule("LS_IN_L2_UNICAST", "ls_in_l2_lkup", 50, "eth.dst == ${mac}", 'outport = "${port}"; output;',
         args=("port:lsp", "mac:mac")),
    Rule("LS_IN_L2_SAME_PORT", "ls_in_l2_lkup", 50, "eth.dst == ${mac}", _DROP, Drop.SAME_PORT,
         ("_:int", "mac:mac")),
    Rule("LS_IN_L2_NO_OTHER_PORT", "ls_in_l2_lkup", None, "", _DROP, Drop.NO_OTHER_PORT, ("inport:lsp",),
         detail="no port of ${dp} but the in-port ${inport} is in the group"),
    Rule("LS_IN_UNKNOWN_DROP", "ls_in_l2_unknown", 50, 'outport == "none"', _DROP, Drop.UNKNOWN_DESTINATION,
         ("_:int", "mac:mac"), detail="no port has ${mac} and none takes unknown"),
    Rule("LS_IN_UNKNOWN", "ls_in_l2_unknown", 50, 'outport == "none"', 'outport = "_MC_unknown"; output;'),
    Rule("LS_IN_UNKNOWN_NO_OTHER_PORT", "ls_in_l2_unknown", None, "", _DROP, Drop.NO_OTHER_PORT, ("inport:lsp",),
         detail="no port of ${dp} but the in-port ${inport} is in the group"),
    # ls_in_dhcp_options: ovn-controller's put_dhcp_opts answers (or not: reg0[3] = 0, the
    # request goes on); the request from an unconfigured client, then a renewal.
    Rule("LS_IN_DHCP_OPTIONS", "ls_in_dhcp_options", 100,
         'inport == "${dhcp.port}" && eth.src == ${dhcp.mac} && ip4.src == 0.0.0.0 && '
         'ip4.dst == 255.255.255.255 && udp.src == 68 && udp.dst == 67',
         "reg0[3] = put_dhcp_opts(offerip = ${dhcp.offerip}, ${dhcp.options}); /* ${result} */ next;",
         args=("dhcp:dhcp", "result:dhcp_result"), writes=_PUT_DHCP_OPTS),
    Rule("LS_IN_DHCP_OPTIONS_RENEW", "ls_in_dhcp_options", 100,
         'inport == "${dhcp.port}" && eth.src == ${dhcp.mac} && ip4.src == ${dhcp.offerip} && '
         'ip4.dst == {${dhcp.server_id}, 255.255.255.255} && udp.src == 68 && udp.dst == 67',
         "reg0[3] = put_dhcp_opts(offerip = ${dhcp.offerip}, ${dhcp.options}); /* ${result} */ next;",
         args=("dhcp:dhcp", "result:dhcp_result"), writes=_PUT_DHCP_OPTS),
    Rule("LS_IN_DHCP_RESPONSE", "ls_in_dhcp_response", 100,
         'inport == "${dhcp.port}" && eth.src == ${dhcp.mac} && ip4 && udp.src == 68 && udp.dst == 67 && reg0[3]',
         "eth.dst = eth.src; eth.src = ${dhcp.server_mac}; ip4.src = ${dhcp.server_id}; udp.src = 67; "
         "udp.dst = 68; outport = inport; flags.loopback = 1; output;", args=("dhcp:dhcp",),
         writes=(("eth.dst", "@"), ("eth.src", "${dhcp.server_mac}"), ("ip4.src", "${dhcp.server_id}"),
                 ("udp.src", "67"), ("udp.dst", "68"))),
    # -- logical switch egress --------------------------------------------------
    Rule("LS_OUT_PORT_DISABLED", "ls_out_check_port_sec", 150, 'outport == "${outport}"', _DROP,
         Drop.PORT_DISABLED, ("outport:lsp",)),
    Rule("LS_OUT_PORT_SEC_DROP", "ls_out_apply_port_sec", 50, "reg0[15] == 1", _DROP, Drop.EGRESS_PORT_SECURITY,
         ("outport:lsp",), detail="${outport}: destination not allowed by port_security"),
    Rule("LS_OUT_PORT_SEC", "ls_out_apply_port_sec", 0, "1", "output;"),
    Rule("LS_OUT_OUTPUT", "ls_out_apply_port_sec", None, "", 'output to "${outport}"', args=("outport:lsp",)),
    # -- logical router ingress -------------------------------------------------
    Rule("LR_IN_LOOP_LIMIT", "lr_in_admission", None, "", _DROP, Drop.LOOP_LIMIT),
    Rule("LR_IN_ADMISSION_VLAN_MCAST", "lr_in_admission", 100, "vlan.present || eth.src[40]", _DROP, Drop.ADMISSION),
    Rule("LR_IN_PORT_DISABLED", "lr_in_admission", None, "", _DROP, Drop.PORT_DISABLED),
    Rule("LR_IN_ADMISSION_DROP", "lr_in_admission", 0, "1", _DROP, Drop.ADMISSION, ("inport:lrp", "mac:mac"),
         detail="eth.dst ${mac} is not ${inport}'s MAC"),
    Rule("LR_IN_ADMISSION", "lr_in_admission", 50, 'eth.dst == ${mac} && inport == "${inport}"',
         "xreg0[0..47] = ${inport.mac}; next;", args=("inport:lrp", "mac:mac")),
    Rule("LR_IN_REENTER", "lr_in_admission", 50, 'inport == "${inport}"', "xreg0[0..47] = ${inport.mac}; next;",
         args=("inport:lrp",)),
    Rule("LR_IN_NOT_IP4", "lr_in_ip_input", None, "", _DROP, Drop.UNSUPPORTED, detail="not IPv4"),
    Rule("LR_IN_ARP_NAT_GW", "lr_in_ip_input", 92, "arp.op == 1 && arp.tpa == ${tpa}",
         "ARP reply; outport = inport; output;", args=("tpa:ip",),
         writes=_ARP_REPLY),
    Rule("LR_IN_ARP_NAT", "lr_in_ip_input", 90, "arp.op == 1 && arp.tpa == ${tpa}",
         "ARP reply; outport = inport; output;", args=("tpa:ip",),
         writes=_ARP_REPLY),
    Rule("LR_IN_ARP_OWN", "lr_in_ip_input", 90, 'inport == "${inport}" && arp.op == 1 && arp.tpa == ${tpa}',
         "ARP reply; outport = inport; output;", args=("tpa:ip", "inport:lrp"),
         writes=_ARP_REPLY),
    Rule("LR_IN_ARP_DROP", "lr_in_ip_input", 85, "arp || nd", _DROP, Drop.ARP_NOT_ANSWERED),
    Rule("LR_IN_MARTIAN_OWN", "lr_in_ip_input", 100, "ip4.src == {${src.ip}, ${src.broadcast}} && reg9[0] == 0", _DROP,
         Drop.MARTIAN, ("src:martian",)),
    Rule("LR_IN_MARTIAN", "lr_in_ip_input", 100,
         "ip4.src_mcast || ip4.src == 255.255.255.255 || ip4.src == 127.0.0.0/8 || ip4.dst == 127.0.0.0/8 || "
         "ip4.src == 0.0.0.0/8 || ip4.dst == 0.0.0.0/8", _DROP, Drop.MARTIAN),
    Rule("LR_IN_ECHO", "lr_in_ip_input", 90, "ip4.dst == ${dst} && icmp4.type == 8 && icmp4.code == 0",
         "ip4.dst <-> ip4.src; ip.ttl = 255; icmp4.type = 0; flags.loopback = 1; next;", args=("dst:ip",),
         writes=(("ip4.dst", "<ip4.src"), ("ip4.src", "<ip4.dst"), ("ip.ttl", "255"), ("icmp4.type", "0"))),
    Rule("LR_IN_MCAST_DROP", "lr_in_ip_input", 82, "ip4.mcast || ip6.mcast", _DROP, Drop.MULTICAST),
    Rule("LR_IN_TCP_RESET", "lr_in_ip_input", 80, "ip4 && ip4.dst == ${dst} && !ip.later_frag && tcp",
         "tcp_reset {eth.dst <-> eth.src; ip4.dst <-> ip4.src; next; };", args=("dst:ip",),
         writes=(("{", "tcp_reset"), ("eth.dst", "<eth.src"), ("eth.src", "<eth.dst"), ("ip4.dst", "<ip4.src"),
                 ("ip4.src", "<ip4.dst"))),
    Rule("LR_IN_PORT_UNREACH", "lr_in_ip_input", 80, "ip4 && ip4.dst == ${dst} && !ip.later_frag && udp",
         "icmp4 {eth.dst <-> eth.src; ip4.dst <-> ip4.src; ip.ttl = 255; icmp4.type = 3; icmp4.code = 3; next; };",
         args=("dst:ip",),
         writes=(("{", "icmp4"), ("eth.dst", "<eth.src"), ("eth.src", "<eth.dst"), ("ip4.dst", "<ip4.src"),
                 ("ip4.src", "<ip4.dst"), ("ip.ttl", "255"), ("icmp4.type", "3"), ("icmp4.code", "3"))),
    Rule("LR_IN_PROTO_UNREACH", "lr_in_ip_input", 70, "ip4 && ip4.dst == ${dst} && !ip.later_frag",
         "icmp4 {eth.dst <-> eth.src; ip4.dst <-> ip4.src; ip.ttl = 255; icmp4.type = 3; icmp4.code = 2; next; };",
         args=("dst:ip",),
         writes=(("{", "icmp4"), ("eth.dst", "<eth.src"), ("eth.src", "<eth.dst"), ("ip4.dst", "<ip4.src"),
                 ("ip4.src", "<ip4.dst"), ("ip.ttl", "255"), ("icmp4.type", "3"), ("icmp4.code", "2"))),
    Rule("LR_IN_ROUTER_ADDRESS", "lr_in_ip_input", 60, "ip4.dst == {${dst}}", _DROP, Drop.ROUTER_ADDRESS,
         ("dst:ip",)),
    Rule("LR_IN_BCAST", "lr_in_ip_input", 50, "eth.bcast", _DROP, Drop.BROADCAST),
    Rule("LR_IN_TTL_DROP", "lr_in_ip_input", 30, "ip.ttl == {0, 1}", _DROP, Drop.TTL_EXPIRED),
    Rule("LR_IN_TTL_EXCEEDED", "lr_in_ip_input", 31, 'inport == "${inport}" && ip4 && ip.ttl == {0, 1}',
         "icmp4 { icmp4.type = 11; icmp4.code = 0; ...; outport = inport; output; };", args=("inport:lrp",),
         writes=(("{", "icmp4"), ("eth.dst", "<eth.src"), ("eth.src", "<eth.dst"), ("icmp4.type", "11"),
                 ("icmp4.code", "0"), ("ip4.dst", "<ip4.src"), ("ip4.src", "@"), ("ip.ttl", "254"))),
    Rule("LR_IN_UNSNAT_GR", "lr_in_unsnat", 90, "ip && ip4.dst == ${ip}", "ct_snat; /* ${ct} */",
         args=("ip:ip", "ct:ct"),
         writes=(("ip4.dst", "@"),)),
    Rule("LR_IN_UNSNAT_STATELESS", "lr_in_unsnat", 100, "ip4.dst == ${ip}", "next;", args=("ip:ip",)),
    Rule("LR_IN_UNSNAT_DGP", "lr_in_unsnat", 100,
         'ip && ip4.dst == ${ip} && inport == "${gw}" && flags.loopback == 0', "ct_snat_in_czone; /* ${ct} */",
         args=("ip:ip", "ct:ct"),
         writes=(("ip4.dst", "@"),)),
    Rule("LR_IN_UNSNAT_SNAT_ZONE", "lr_in_unsnat", 100,
         'ip && ip4.dst == ${ip} && inport == "${gw}" && flags.loopback == 1 && flags.use_snat_zone == 1',
         "ct_snat; /* ${ct} */", args=("ip:ip", "ct:ct"),
         writes=(("ip4.dst", "@"),)),
    Rule("LR_IN_DNAT_STATELESS", "lr_in_dnat", 100, "ip && ip4.dst == ${nat.external_ip}",
         "ip4.dst = ${nat.logical_ip}; next;", args=("nat:nat",),
         writes=(("ip4.dst", "${nat.logical_ip}"),)),
    Rule("LR_IN_DNAT_GR", "lr_in_dnat", 100, "ip && ip4.dst == ${nat.external_ip}",
         "flags.loopback = 1; ct_dnat(${nat.logical_ip}); /* ${ct} */", args=("nat:nat", "ct:ct"),
         writes=(("ip4.dst", "@"),)),
    Rule("LR_IN_DNAT_DGP", "lr_in_dnat", 100, 'ip && ip4.dst == ${nat.external_ip} && inport == "${gw}"',
         "ct_dnat_in_czone(${nat.logical_ip}); /* ${ct} */", args=("nat:nat", "ct:ct"),
         writes=(("ip4.dst", "@"),)),
    Rule("LR_IN_NO_ROUTE", "lr_in_ip_routing", 0, "1", _DROP, Drop.NO_ROUTE, ("dst:ip",),
         detail="no route to ${dst}"),
    Rule("LR_IN_ROUTE", "lr_in_ip_routing", "${route.priority}", "ip4.dst == ${route.prefix}",
         'ip.ttl--; reg0 = ${reg0}; reg1 = ${route.src_ip}; eth.src = ${route.src_mac}; '
         'outport = "${route.outport}"; next;', args=("route:route", "reg0:ip"),
         writes=(("ip.ttl", None), ("eth.src", "${route.src_mac}"))),
    Rule("LR_IN_NAT_ADDRESS", "lr_in_arp_resolve", 150,
         'inport == "${gw}" && outport == "${gw}" && ip4.dst == ${dst}', _DROP, Drop.NAT_ADDRESS, ("dst:ip",)),
    Rule("LR_IN_ARP_STATIC", "lr_in_arp_resolve", 100, 'outport == "${hop.port}" && reg0 == ${reg0}',
         "eth.dst = ${hop.mac}; next;", args=("reg0:ip", "hop:portmac"),
         writes=(("eth.dst", "${hop.mac}"),)),
    Rule("LR_IN_ARP_RESOLVE_ROUTER", "lr_in_arp_resolve", 2, "ip4.dst == {${dst}}", _DROP, Drop.ROUTER_ADDRESS,
         ("dst:ip",)),
    Rule("LR_IN_GET_ARP", "lr_in_arp_resolve", 1, "ip4", "get_arp(outport, reg0); next; /* ${mac} */",
         args=("_:int", "mac:binding"),
         writes=(("eth.dst", "${mac}"),)),
    Rule("LR_IN_GW_REDIRECT", "lr_in_gw_redirect", 100, 'ip4.src == ${nat.logical_ip} && outport == "${gw}"',
         "eth.src = ${nat.external_mac}; reg1 = ${nat.external_ip}; next;", args=("nat:nat",),
         writes=(("eth.src", "${nat.external_mac}"),)),
    Rule("LR_IN_ARP_REQUEST", "lr_in_arp_request", 100, "eth.dst == 00:00:00:00:00:00 && ip4",
         "arp { eth.dst = ff:ff:ff:ff:ff:ff; arp.spa = ${spa}; arp.tpa = ${tpa}; arp.op = 1; output; };",
         args=("spa:ip", "tpa:ip"),
         writes=(("{", "arp"), ("eth.dst", "ff:ff:ff:ff:ff:ff"), ("arp.spa", "${spa}"), ("arp.tpa", "${tpa}"), ("arp.op", "1"))),
    # pinctrl's buffered packets: the packet the arp action sent to the controller is
    # kept (3 newest per next hop) and sent on through the egress pipeline, eth.dst
    # filled in, once a MAC binding for the next hop appears.
    Rule("LR_IN_ARP_HOLD", "lr_in_arp_request", None, "", "/* pinctrl holds the packet until ${hop} resolves */",
         args=("hop:ip",)),
    Rule("LR_IN_ARP_RELEASE", "lr_in_arp_request", None, "",
         "/* held packet sent: ${hop} is at ${mac}; eth.dst = ${mac}; output; */", args=("hop:ip", "mac:mac"),
         writes=(("eth.dst", "${mac}"),)),
    # -- logical router egress --------------------------------------------------
    Rule("LR_OUT_UNDNAT_GR", "lr_out_undnat", 50, "ip", "flags.loopback = 1; ct_dnat; /* ${ct} */",
         args=("src:ip", "ct:ct"),
         writes=(("ip4.src", "@"),)),
    # A gateway router commits every new connection in its DNAT zone on the way out,
    # so that the reply of a connection opened from outside to a fixed address is
    # ct.rpl there and skips lr_out_snat's (!ct.trk || !ct.rpl) flows.
    Rule("LR_OUT_POST_UNDNAT_GR", "lr_out_post_undnat", 50, "ip && ct.new", "ct_commit { } ; next; /* ${ct} */",
         args=("_:int", "ct:ct")),
    Rule("LR_OUT_UNDNAT_DGP", "lr_out_undnat", 100, 'ip && ip4.src == ${src} && outport == "${gw}"',
         "ct_dnat_in_czone; /* ${ct} */", args=("src:ip", "ct:ct"),
         writes=(("eth.src", "@"), ("ip4.src", "@"))),
    Rule("LR_OUT_SNAT_STATELESS", "lr_out_snat", "${snat.priority}", "ip && ip4.src == ${snat.logical}",
         "ip4.src = ${snat.external_ip}; next;", args=("snat:snat",),
         writes=(("ip4.src", "${snat.external_ip}"),)),
    Rule("LR_OUT_SNAT_GR", "lr_out_snat", "${snat.priority}", "ip && ip4.src == ${snat.logical}",
         "ct_snat(${snat.external_ip}); /* ${ct} */", args=("snat:snat", "ct:ct"),
         writes=(("ip4.src", "@"),)),
    Rule("LR_OUT_SNAT_GR_GW", "lr_out_snat", "${snat.priority}",
         'ip && ip4.src == ${snat.logical} && outport == "${gw}"', "ct_snat(${snat.external_ip}); /* ${ct} */",
         args=("snat:snat", "ct:ct"),
         writes=(("ip4.src", "@"),)),
    Rule("LR_OUT_SNAT_CZONE", "lr_out_snat", "${snat.priority}",
         'ip && ip4.src == ${snat.logical} && outport == "${gw}"',
         "ct_snat_in_czone(${snat.external_ip}); /* ${ct} */", args=("snat:snat", "ct:ct"),
         writes=(("ip4.src", "@"),)),
    Rule("LR_OUT_SNAT_DNAT_LOCAL", "lr_out_snat", "${snat.priority1}",
         'ip && ip4.src == ${snat.logical} && outport == "${gw}" && reg9[4] == 1',
         "reg9[4] = 0; ct_snat(${snat.external_ip}); /* ${ct} */",
         args=("snat:snat", "ct:ct"),
         writes=(("ip4.src", "@"),)),
    Rule("LR_OUT_EGR_LOOP", "lr_out_egr_loop", 100, 'ip4.dst == ${dst} && outport == "${gw}"',
         "clone { ct_clear; inport = outport; eth.dst <-> eth.src; flags.loopback = 1; "
         "next(pipeline=ingress, table=0); };", args=("dst:ip",),
         writes=(("{", "clone"), ("eth.dst", "<eth.src"), ("eth.src", "<eth.dst"))),
    Rule("LR_OUT_LOOP_LIMIT", "lr_out_egr_loop", None, "", _DROP, Drop.LOOP_LIMIT),
    # The frame's whole budget of datapath visits is spent (a multiplying loop: OVS
    # abandons a translation after 4,096 resubmits); where it ran out, and how much was left.
    *(Rule(f"{pipe}_FRAME_BUDGET", stage, None, "", _DROP, Drop.LOOP_LIMIT, ("visits:int", "pending:int"),
           detail="the frame's budget of ${visits} datapath visits is spent; ${pending} pending copies abandoned")
      for pipe, stage in (("LS_IN", "ls_in_check_port_sec"), ("LS_OUT", "ls_out_check_port_sec"),
                          ("LR_IN", "lr_in_admission"))),
    # A ct_dnat/ct_snat that would commit a new connection to a full table (OVS: a
    # zone limit reached, the packet dropped).
    Rule("LR_IN_DNAT_CT_FULL", "lr_in_dnat", None, "", _DROP, Drop.CONNTRACK_FULL, ("limit:int",),
         detail="the conntrack table holds its limit of ${limit} connections"),
    Rule("LR_OUT_SNAT_CT_FULL", "lr_out_snat", None, "", _DROP, Drop.CONNTRACK_FULL, ("limit:int",),
         detail="the conntrack table holds its limit of ${limit} connections"),
    Rule("LR_OUT_POST_UNDNAT_CT_FULL", "lr_out_post_undnat", None, "", _DROP, Drop.CONNTRACK_FULL, ("limit:int",),
         detail="the conntrack table holds its limit of ${limit} connections"),
    Rule("LR_OUT_DELIVERY", "lr_out_delivery", 100, 'outport == "${outport}"', "output;", args=("outport:lrp",)),
    Rule("LR_OUT_NOT_ATTACHED", "lr_out_delivery", None, "", _DROP, Drop.NO_ROUTE, ("outport:lrp",),
         detail="${outport} is not attached to a switch"),
    # -- switch ACL stages (security groups), on switches with ACLs only ---------
    # (northd.c build_pre_acls / build_acl_hints / build_acls / build_stateful,
    # 23.03; docs/acl-engine-notes.md.)  Ingress and egress have the same flows,
    # with inport/outport and the from-lport/to-lport ACLs; ${acl} is an ACL row
    # (its OVN flow priority is the ACL's + 1000).
    *(rule for pipe, stage, port in (("LS_IN", "ls_in", "inport"), ("LS_OUT", "ls_out", "outport")) for rule in (
        Rule(f"{pipe}_PRE_ACL_STATELESS", f"{stage}_pre_acl", "${acl.priority}", "${acl.match}",
             "reg0[16] = 1; next;", args=("acl:acl",)),
        Rule(f"{pipe}_PRE_ACL_MCAST", f"{stage}_pre_acl", 110, "eth.mcast", "next;"),
        Rule(f"{pipe}_PRE_ACL_ROUTER", f"{stage}_pre_acl", 110, f'ip && {port} == "${{port}}"', "next;",
             args=("port:lsp",)),
        Rule(f"{pipe}_PRE_ACL_IP", f"{stage}_pre_acl", 100, "ip", "reg0[0] = 1; next;"),
        Rule(f"{pipe}_PRE_LB_STATELESS", f"{stage}_pre_lb", 110, "reg0[16] == 1", "next;"),
        Rule(f"{pipe}_PRE_STATEFUL", f"{stage}_pre_stateful", 100, "reg0[0] == 1",
             "ct_next; /* ct_state=${state} */", args=("state:ctstate",)),
        Rule(f"{pipe}_ACL_HINT_NEW", f"{stage}_acl_hint", 7, "ct.new && !ct.est", "reg0[7] = 1; reg0[9] = 1; next;"),
        Rule(f"{pipe}_ACL_HINT_BLOCKED_NEW", f"{stage}_acl_hint", 6,
             "!ct.new && ct.est && !ct.rpl && ct_mark.blocked == 1", "reg0[7] = 1; reg0[9] = 1; next;"),
        Rule(f"{pipe}_ACL_HINT_UNTRACKED", f"{stage}_acl_hint", 5, "!ct.trk", "reg0[8] = 1; reg0[9] = 1; next;"),
        Rule(f"{pipe}_ACL_HINT_EST", f"{stage}_acl_hint", 4,
             "!ct.new && ct.est && !ct.rpl && ct_mark.blocked == 0", "reg0[8] = 1; reg0[10] = 1; next;"),
        Rule(f"{pipe}_ACL_HINT_NOT_EST", f"{stage}_acl_hint", 3, "!ct.est", "reg0[9] = 1; next;"),
        Rule(f"{pipe}_ACL_HINT_EST_BLOCKED", f"{stage}_acl_hint", 2, "ct.est && ct_mark.blocked == 1",
             "reg0[9] = 1; next;"),
        Rule(f"{pipe}_ACL_HINT_EST_ALLOWED", f"{stage}_acl_hint", 1, "ct.est && ct_mark.blocked == 0",
             "reg0[10] = 1; next;"),
        Rule(f"{pipe}_ACL_RELATED", f"{stage}_acl", 65532,
             "!ct.est && ct.rel && !ct.new && !ct.inv && ct_mark.blocked == 0",
             "reg0[17] = 1; ct_commit_nat;" if pipe == "LS_IN" else "ct_commit_nat;"),
        Rule(f"{pipe}_ACL_REPLY", f"{stage}_acl", 65532,
             "ct.est && !ct.rel && !ct.new && !ct.inv && ct.rpl && ct_mark.blocked == 0",
             "reg0[9] = 0; reg0[10] = 0; reg0[17] = 1; next;" if pipe == "LS_IN" else "next;"),
        Rule(f"{pipe}_ACL_INVALID", f"{stage}_acl", 65532, "ct.inv || (ct.est && ct.rpl && ct_mark.blocked == 1)",
             _DROP, Drop.ACL_INVALID, ("port:lsp",),
             detail="conntrack of port ${port} calls it invalid (an ICMP error about no connection it knows)"),
        Rule(f"{pipe}_ACL_BLOCKED_REPLY", f"{stage}_acl", 65532,
             "ct.inv || (ct.est && ct.rpl && ct_mark.blocked == 1)", _DROP, Drop.ACL, ("port:lsp",),
             detail="a reply of a connection of port ${port} that its security groups no longer allow"),
        Rule(f"{pipe}_ACL_ALLOW_NEW", f"{stage}_acl", "${acl.priority}", "reg0[7] == 1 && (${acl.match})",
             "reg0[1] = 1; next;", args=("acl:acl",)),
        Rule(f"{pipe}_ACL_ALLOW_EST", f"{stage}_acl", "${acl.priority}", "reg0[8] == 1 && (${acl.match})", "next;",
             args=("acl:acl",)),
        Rule(f"{pipe}_ACL_ALLOW_STATELESS", f"{stage}_acl", "${acl.priority}", "${acl.match}", "next;",
             args=("acl:acl",)),
        # A drop ACL (Neutron's neutron_pg_drop): the record names the ACL, the
        # port and the packet's remote address, protocol and port, so that the
        # detail can say which security group rule would have let it through.
        Rule(f"{pipe}_ACL_DROP_BLOCK", f"{stage}_acl", "${why.priority}", "reg0[10] == 1 && (${why.match})",
             _DROP, Drop.ACL, ("remote:ip", "why:aclwhy"),
             detail="${why.text} (the connection is marked blocked: ct_commit { ct_mark.blocked = 1; })"),
        Rule(f"{pipe}_ACL_DROP", f"{stage}_acl", "${why.priority}", "reg0[9] == 1 && (${why.match})", _DROP,
             Drop.ACL, ("remote:ip", "why:aclwhy"), detail="${why.text}"),
        Rule(f"{pipe}_ACL_DEFAULT_NEW", f"{stage}_acl", 1, "ip && !ct.est", "reg0[1] = 1; next;"),
        Rule(f"{pipe}_ACL_DEFAULT_UNBLOCK", f"{stage}_acl", 1, "ip && ct.est && ct_mark.blocked == 1",
             "reg0[1] = 1; next;"),
        Rule(f"{pipe}_STATEFUL", f"{stage}_stateful", 100, "reg0[1] == 1 && reg0[13] == 0",
             "ct_commit { ct_mark.blocked = 0; }; next;"),
    )),
    Rule("LS_IN_ACL_AFTER_LB", "ls_in_acl_after_lb", 65532, "reg0[17] == 1", "next;"),
    # The DHCP replies ovn-controller sends (ls_in_dhcp_response) pass a port's to-lport ACLs
    # (northd.c build_acls: one flow per port with DHCPv4 options; "next;" without stateful ACLs).
    Rule("LS_OUT_ACL_DHCP_REPLY", "ls_out_acl", 34000,
         'outport == "${dhcp.port}" && eth.src == ${dhcp.server_mac} && ip4.src == ${dhcp.server_id} && udp && '
         'udp.src == 67 && udp.dst == 68', "ct_commit; next;", args=("dhcp:dhcp",)),
    # -- pass-through steps: flows OVN's trace shows that change nothing ovnsim models --
    # (register bookkeeping, FDB learning, ECMP/policy defaults).  Traced so the
    # stage and priority sequence is ovn-trace's; PASS_THROUGH lists them.
    Rule("LS_IN_PORT_SEC_CHECKED", "ls_in_check_port_sec", 50, "1", "reg0[15] = check_in_port_sec(); next;"),
    Rule("LS_IN_LOOKUP_FDB", "ls_in_lookup_fdb", 100, 'inport == "${inport}"',
         "reg0[11] = lookup_fdb(inport, eth.src); next;", args=("inport:lsp",)),
    Rule("LS_IN_PUT_FDB", "ls_in_put_fdb", 100, 'inport == "${inport}" && reg0[11] == 0',
         "put_fdb(inport, eth.src); next;", args=("inport:lsp",)),
    Rule("LS_IN_PRE_LB_MCAST", "ls_in_pre_lb", 110, "eth.mcast", "next;"),
    Rule("LS_IN_PRE_LB_ROUTER", "ls_in_pre_lb", 110, 'ip && inport == "${inport}"', "next;", args=("inport:lsp",)),
    Rule("LS_IN_ARP_RSP_LOCALNET", "ls_in_arp_rsp", 100, 'inport == "${inport}"', "next;", args=("inport:lsp",)),
    Rule("LS_IN_ARP_RSP_OWNER", "ls_in_arp_rsp", 100, 'arp.tpa == ${tpa} && arp.op == 1 && inport == "${inport}"',
         "next;", args=("tpa:ip", "inport:lsp")),
    Rule("LS_IN_L2_GET_FDB", "ls_in_l2_lkup", 0, "1", "outport = get_fdb(eth.dst); next;"),
    Rule("LS_OUT_PRE_LB_MCAST", "ls_out_pre_lb", 110, "eth.mcast", "next;"),
    Rule("LS_OUT_PRE_LB_ROUTER", "ls_out_pre_lb", 110, 'ip && outport == "${outport}"', "ct_clear; next;",
         args=("outport:lsp",)),
    Rule("LS_OUT_CHECK_PORT_SEC_MCAST", "ls_out_check_port_sec", 100, "eth.mcast", "reg0[15] = 0; next;"),
    Rule("LS_OUT_CHECK_PORT_SEC", "ls_out_check_port_sec", 0, "1", "reg0[15] = check_out_port_sec(); next;"),
    Rule("LR_IN_LOOKUP_NEIGHBOR", "lr_in_lookup_neighbor", 0, "1", "reg9[2] = 1; next;"),
    Rule("LR_IN_LOOKUP_ARP_REPLY", "lr_in_lookup_neighbor", 100, "arp.op == 2",
         "reg9[2] = lookup_arp(inport, arp.spa, arp.sha); reg9[3] = 1; next;"),
    Rule("LR_IN_LOOKUP_ARP_FOR_PORT", "lr_in_lookup_neighbor", 110,
         'inport == "${inport}" && arp.spa == ${net.prefix} && arp.tpa == ${net.ip} && arp.op == 1',
         "reg9[2] = lookup_arp(inport, arp.spa, arp.sha); reg9[3] = 1; next;", args=("net:rnet", "inport:lrp")),
    Rule("LR_IN_LOOKUP_ARP_REQUEST", "lr_in_lookup_neighbor", 100,
         'inport == "${inport}" && arp.spa == ${net.prefix} && arp.op == 1',
         "reg9[2] = lookup_arp(inport, arp.spa, arp.sha); reg9[3] = lookup_arp_ip(inport, arp.spa); next;",
         args=("net:rnet", "inport:lrp")),
    Rule("LR_IN_LOOKUP_ARP_REPLY_ALWAYS", "lr_in_lookup_neighbor", 100, "arp.op == 2",
         "reg9[2] = lookup_arp(inport, arp.spa, arp.sha); next;"),
    Rule("LR_IN_LOOKUP_ARP_REQUEST_ALWAYS", "lr_in_lookup_neighbor", 100,
         'inport == "${inport}" && arp.spa == ${net.prefix} && arp.op == 1',
         "reg9[2] = lookup_arp(inport, arp.spa, arp.sha); next;", args=("net:rnet", "inport:lrp")),
    Rule("LR_IN_LEARN_SKIP", "lr_in_learn_neighbor", 100, "reg9[2] == 1 || reg9[3] == 0", "next;"),
    Rule("LR_IN_LEARN_SKIP_ALWAYS", "lr_in_learn_neighbor", 100, "reg9[2] == 1", "next;"),
    Rule("LR_IN_LEARN_ARP", "lr_in_learn_neighbor", 90, "arp", "put_arp(inport, arp.spa, arp.sha); next;"),
    Rule("LR_IN_ROUTING_PRE", "lr_in_ip_routing_pre", 0, "1", "reg7 = 0; next;"),
    Rule("LR_IN_ROUTING_ECMP", "lr_in_ip_routing_ecmp", 150, "reg8[0..15] == 0", "next;"),
    Rule("LR_IN_POLICY", "lr_in_policy", 0, "1", "reg8[0..15] = 0; next;"),
    Rule("LR_IN_POLICY_ECMP", "lr_in_policy_ecmp", 150, "reg8[0..15] == 0", "next;"),
    Rule("LR_IN_GW_REDIRECT_CR", "lr_in_gw_redirect", 50, 'outport == "${gw}"', 'outport = "cr-${gw}"; next;'),
    Rule("LR_IN_ARP_REQUEST_NONE", "lr_in_arp_request", 0, "1", "output;"),
    Rule("LR_IN_IP_INPUT_OWN_SRC", "lr_in_ip_input", 120, 'inport == "${inport}" && ip4.src == ${src}', "next;",
         args=("src:ip", "inport:lrp")),
    Rule("LR_OUT_UNDNAT_STATELESS", "lr_out_undnat", 100, 'ip && ip4.src == ${src} && outport == "${gw}"', "next;",
         args=("src:ip",)),
    Rule("LR_OUT_CHK_DNAT_LOCAL", "lr_out_chk_dnat_local", 0, "1", "reg9[4] = 0; next;"),
    Rule("LR_OUT_CHK_DNAT_LOCAL_NAT", "lr_out_chk_dnat_local", 50, "ip && ip4.dst == ${dst}", "reg9[4] = 1; next;",
         args=("dst:ip",)),
    # -- before the first stage: the frame could not enter ------------------------
    Rule("PARSE_MALFORMED", "ls_in_check_port_sec", None, "", _DROP, Drop.MALFORMED, ("problem:parse", "n:int"),
         detail="${problem}", event=False),
    Rule("PARSE_UNSUPPORTED", "ls_in_check_port_sec", None, "", _DROP, Drop.UNSUPPORTED,
         ("problem:parse", "n:int"), detail="${problem}", event=False),
    # A frame captured with a snaplen (tcpdump -s 96) replays on the headers it has;
    # one whose headers themselves were cut cannot.
    Rule("PARSE_SNAPLEN", "ls_in_check_port_sec", None, "", _DROP, Drop.SNAPLEN_TRUNCATED,
         ("problem:parse", "n:int"), detail="${problem}", event=False),
    Rule("NO_INGRESS", "ls_in_check_port_sec", None, "", _DROP, Drop.NO_INGRESS,
         detail="no logical port owns the frame's source", event=False),
)

#: The pass-through steps (between LS_IN_PORT_SEC_CHECKED and LR_OUT_CHK_DNAT_LOCAL_NAT above).
PASS_THROUGH = frozenset(r.name for r in RULES[[r.name for r in RULES].index("LS_IN_PORT_SEC_CHECKED"):
                                                [r.name for r in RULES].index("LR_OUT_CHK_DNAT_LOCAL_NAT") + 1])

#: Rule code by name (the index into :data:`RULES`; ``R_<name>`` in C).
RULE_CODE: Dict[str, int] = {r.name: i for i, r in enumerate(RULES)}

#: Why a frame could not be parsed (``PARSE_MALFORMED`` / ``PARSE_UNSUPPORTED``'s
#: first value), in code order; ``{n}`` is the frame's length.
PARSE_PROBLEMS: Tuple[Tuple[str, str], ...] = (
    ("RUNT", "runt frame: {n} bytes, an Ethernet header needs 14"),
    ("TRUNCATED_VLAN", "truncated VLAN tag"),
    ("TRUNCATED_ARP", "truncated ARP header"),
    ("TRUNCATED_IP4", "truncated IPv4 header"),
    ("BAD_IP4_HEADER", "bad IPv4 version or header length"),
    ("BAD_IP4_LENGTH", "IPv4 total length exceeds the frame"),
    ("TRUNCATED_ICMP", "truncated ICMP header"),
    ("TRUNCATED_TCP", "truncated TCP header"),
    ("TRUNCATED_UDP", "truncated UDP header"),
    ("IPV6", "IPv6 is not modelled yet"),
    ("SNAPLEN", "headers cut by the capture's snaplen: {n} bytes captured"),
)

#: Kinds of output (``kind`` in a verdict; ``BatchResult.out_kind`` is the index), with what each is.
OUTPUT_KINDS: Tuple[Tuple[str, str], ...] = (
    ("packet", "the frame itself, possibly rewritten"),
    ("arp_reply", "an in-place ARP reply from a responder"),
    ("echo_reply", "a router's in-place ICMP echo reply"),
    ("arp", "an ARP request a router sent instead of the frame"),
    ("icmp4", "an ICMP error a router generated"),
    ("tcp_reset", "a TCP RST+ACK a router generated"),
    ("dhcp_reply", "a DHCPOFFER/ACK/NAK ovn-controller sent (put_dhcp_opts)"),
)

#: What a ct_snat/ct_dnat did (the low byte of a "ct" value), in code order.
CT_OUTCOMES: Tuple[Tuple[str, str], ...] = (
    ("ALREADY", "already tracked in this zone"),
    ("RELATED_NONE", "ICMP error, no related connection, no change"),
    ("RELATED", "related ICMP error, un-NAT of it and of the datagram it quotes"),
    ("REPLY", "un-NAT (reply)"),
    ("ESTABLISHED", "NAT (established)"),
    ("NO_ENTRY", "no conntrack entry, no change"),
    ("NEW", "new connection"),
    ("FULL", "new connection refused: the conntrack table is full"),
    ("INVALID", "not a first packet (SYN+ACK, echo reply, ICMP error...): not committed, not NATed"),
    ("COMMITTED", "new connection committed, not NATed"),
    ("ALREADY_NEW", "already tracked in this zone, committed by this packet (ct.new)"),
    ("RELATED_ORIG", "related ICMP error the connection's original way, NAT of it and of the datagram it quotes"),
)


#: What put_dhcp_opts did (controller/pinctrl.c pinctrl_handle_put_dhcp_opts), in code order:
#: a reply (reg0[3] = 1) or why there is none (reg0[3] = 0: the request goes on unanswered).
DHCP_RESULTS: Tuple[Tuple[str, str], ...] = (
    ("OFFER", "DHCPOFFER"),
    ("ACK", "DHCPACK"),
    ("NAK", "DHCPNAK: the requested address is not the offer"),
    ("INFORM_ACK", "DHCPACK to a DHCPINFORM"),
    ("NOT_BOOTP", "no reply, reg0[3] = 0: not a BOOTP request (short, op not 1, or no magic cookie)"),
    ("NO_TYPE", "no reply, reg0[3] = 0: no DHCP message type option"),
    ("RELEASE", "no reply, reg0[3] = 0: DHCPRELEASE"),
    ("DECLINE", "no reply, reg0[3] = 0: DHCPDECLINE"),
    ("BAD_TYPE", "no reply, reg0[3] = 0: a message type OVN does not answer"),
    ("SNAPLEN", "not answered: the capture's snaplen cut the request, ovn-controller's reply is unknown"),
)


def _check() -> None:
    for rule in RULES:
        if rule.stage not in STAGE_CODE:
            raise ValueError(f"rule {rule.name}: no stage {rule.stage!r}")
        for arg in rule.args:
            if arg.split(":")[1] not in ARGS:
                raise ValueError(f"rule {rule.name}: unknown value kind in {arg!r}")
        if len(rule.args) > 2:
            raise ValueError(f"rule {rule.name}: a record has two values")
        if rule.args and rule.args[0].split(":")[1] in ("mac", "ct", "portmac", "binding"):
            raise ValueError(f"rule {rule.name}: value a has 32 bits, too few for {rule.args[0]!r}")


_check()


def generate_pxi() -> str:
    """The text of ``ovnsim/datapath/_rules.pxi``: the codes the C engine uses."""
    lines = [
        "# Generated by `python -m ovnsim.northd.rules` from ovnsim/northd/rules.py: do not edit.",
        "# Rule, stage, drop, parse-problem, conntrack-outcome and output-kind codes of the engine.",
        "",
        "cdef enum:",
    ]
    lines += [f"    R_{r.name} = {i}" for i, r in enumerate(RULES)]
    lines += [f"    N_RULES = {len(RULES)}", "", "cdef enum:"]
    lines += [f"    S_{s.name.upper()} = {i}" for i, s in enumerate(STAGE_LIST)]
    lines += [f"    N_STAGES = {len(STAGE_LIST)}", "", "cdef enum:"]
    lines += [f"    D_{d.name} = {int(d)}" for d in Drop]
    lines += ["", "cdef enum:"]
    lines += [f"    PP_{name} = {i}" for i, (name, _) in enumerate(PARSE_PROBLEMS)]
    lines += ["", "cdef enum:"]
    lines += [f"    CT_{name} = {i}" for i, (name, _) in enumerate(CT_OUTCOMES)]
    lines += ["", "cdef enum:"]
    lines += [f"    KIND_{name.upper()} = {i}" for i, (name, _) in enumerate(OUTPUT_KINDS)]
    lines += ["", "cdef enum:"]
    lines += [f"    DR_{name} = {i}" for i, (name, _) in enumerate(DHCP_RESULTS)]
    lines += ["", "# By rule code: the stage (S_*) and the drop disposition (D_*, 0: the rule does not drop).",
              "cdef int16_t RULE_STAGE[N_RULES]", "cdef int8_t RULE_DROP[N_RULES]"]
    lines.append("RULE_STAGE[:] = [" + ", ".join(f"S_{r.stage.upper()}" for r in RULES) + "]")
    lines.append("RULE_DROP[:] = [" + ", ".join(f"D_{r.drop.name}" if r.drop else "0" for r in RULES) + "]")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write ``ovnsim/datapath/_rules.pxi`` next to the engine."""
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "datapath" / "_rules.pxi"
    path.write_text(generate_pxi(), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
