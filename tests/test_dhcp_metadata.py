"""DHCP and the metadata port as Neutron's ML2/OVN driver configures them (compiler/export side).

``topologies/dhcp-metadata.yaml``: web-v4 with DHCP, DNS servers and a host
route, db-v4 with ``enable_dhcp: false``, ``metadata: true``.  What the
compiler writes is checked against Neutron's rules (``ovn_client.py``
``_get_ovn_dhcpv4_opts``, ``create_metadata_port``, ``_get_port_options``);
tests/test_ovn_load.py checks real OVN accepts it.  ``tests/data/dhcp/``
holds ovn-trace's verdicts (OVN 23.03.1) for DHCP and metadata microflows:
the metadata path agrees; the engine's DHCP responder (``_dhcp.pxi``) answers
as ovn-controller does (its replies are compared byte for byte with the real
data path's in ``tests/conformance/test_realdp_dhcp.py``).
"""

from __future__ import annotations

import json
import pathlib

import pytest
import yaml
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from ovnsim.errors import TopologyError
from ovnsim.nb.model import LSP_TYPE_LOCALPORT
from ovnsim.nb.nbctl import nbctl_commands
from ovnsim.nb.show import show_text
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_document, load_topology
from ovnsim.sim import Simulator
from ovnsim.testing.nbshow import parse_nbctl_show
from ovnsim.testing.ovntrace import make_verdict

from pipeline_helpers import TOPOLOGIES

TOPO = TOPOLOGIES / "dhcp-metadata.yaml"
DATA = pathlib.Path(__file__).parent / "data" / "dhcp"
WEB1_MAC, WEB1_IP = "fa:16:3e:05:00:11", "10.3.0.11"


@pytest.fixture(scope="module")
def topology():
    return load_topology(str(TOPO))


@pytest.fixture(scope="module")
def logical(topology):
    return compile_topology(topology)


def _doc():
    return yaml.safe_load(TOPO.read_text())


def _port(logical, name):
    return logical.switch_ports()[name][1]


# -- DHCP_Options rows ----------------------------------------------------------


def test_dhcp_options_as_neutron_writes_them(topology, logical):
    rows = {row.key: row for row in logical.dhcp_options}
    assert set(rows) == {"public-v4", "web-v4"}  # db-v4 has enable_dhcp: false
    web = rows["web-v4"]
    server_mac = topology.subnet("web-v4").dhcp_server_mac
    assert web.cidr == "10.3.0.0/24"
    assert dict(web.options) == {
        "server_id": "10.3.0.1",
        "router": "10.3.0.1",
        "lease_time": "43200",
        "mtu": "1442",
        "server_mac": server_mac,
        "dns_server": "{192.0.2.53, 192.0.2.54}",
        # the metadata route first, the host routes, then the default route (RFC 3442)
        "classless_static_route": "{169.254.169.254/32,10.3.0.2, 192.168.100.0/24,10.3.0.254, 0.0.0.0/0,10.3.0.1}",
    }
    assert dict(web.external_ids) == {"subnet_id": "web-v4", "neutron:network_id": "web"}
    assert server_mac.startswith("fa:16:3e:")
    # the provider network: MTU 1500 by default, metadata route via its own metadata port
    assert rows["public-v4"].options["mtu"] == "1500"
    assert rows["public-v4"].options["classless_static_route"] == "{169.254.169.254/32,172.24.4.2, 0.0.0.0/0,172.24.4.1}"


def test_ports_reference_their_subnet_row(logical):
    assert _port(logical, "web1").dhcpv4_options == "web-v4"
    assert _port(logical, "web2").dhcpv4_options == "web-v4"
    assert _port(logical, "db1").dhcpv4_options is None  # DHCP off on its subnet
    # router and metadata ports never get DHCP (network device ports in Neutron)
    assert _port(logical, "router1-web-v4").dhcpv4_options is None
    assert _port(logical, "ovnmeta-web").dhcpv4_options is None


def test_without_metadata_no_route_option_and_dhcp_on_by_default():
    doc = _doc()
    del doc["metadata"]
    del doc["projects"]["demo"]["networks"]["web"]["subnets"]["web-v4"]["host_routes"]
    logical = compile_topology(load_document(doc, "t.yaml"))
    web = next(r for r in logical.dhcp_options if r.key == "web-v4")
    assert "classless_static_route" not in web.options
    assert not any(p.type == LSP_TYPE_LOCALPORT for ls in logical.switches for p in ls.ports)
    # the other examples have no DHCP settings: every subnet gets its row
    reference = compile_topology(load_topology(str(TOPOLOGIES / "reference.yaml")))
    assert {r.key for r in reference.dhcp_options} == {"public-v4", "web-v4", "db-v4"}
    assert all(r.options["lease_time"] == "43200" and r.options["router"] == r.options["server_id"]
               for r in reference.dhcp_options)


def test_subnet_without_gateway_or_metadata_gets_an_empty_row():
    doc = _doc()
    del doc["metadata"]
    subnet = doc["projects"]["demo"]["networks"]["web"]["subnets"]["web-v4"]
    subnet["gateway_ip"] = None
    doc["projects"]["demo"]["routers"]["router1"]["interfaces"] = ["db-v4"]
    logical = compile_topology(load_document(doc, "t.yaml"))
    web = next(r for r in logical.dhcp_options if r.key == "web-v4")
    assert dict(web.options) == {}  # Neutron has no server_id for it: OVN offers nothing
    # with a metadata port its address becomes the server
    doc["metadata"] = True
    logical = compile_topology(load_document(doc, "t.yaml"))
    web = next(r for r in logical.dhcp_options if r.key == "web-v4")
    assert web.options["server_id"] == "10.3.0.1"  # the metadata port took the lowest free address
    assert "router" not in web.options
    assert web.options["classless_static_route"] == "{169.254.169.254/32,10.3.0.1, 192.168.100.0/24,10.3.0.254}"


# -- metadata port ----------------------------------------------------------------


def test_metadata_port_per_network(topology, logical):
    web = _port(logical, "ovnmeta-web")
    md = topology.networks["web"].metadata_port
    assert web.type == LSP_TYPE_LOCALPORT
    assert web.addresses == (f"{md.mac_address} 10.3.0.2",)  # lowest free address: created before any VM
    assert web.port_security == ()
    assert web.external_ids["neutron:device_owner"] == "network:distributed"
    assert web.external_ids["neutron:device_id"] == "ovnmeta-web"
    # db's only subnet has no DHCP: the metadata port has no address there
    assert _port(logical, "ovnmeta-db").addresses == (topology.networks["db"].metadata_port.mac_address,)
    assert "ovnmeta-public" in {p.name for p in logical.switch("neutron-public").ports}


def test_metadata_port_id_clash_is_a_clear_error():
    doc = _doc()
    doc["projects"]["demo"]["ports"]["web1"]["id"] = "ovnmeta-web"
    with pytest.raises(TopologyError) as info:
        load_document(doc, "t.yaml")
    assert str(info.value) == ("t.yaml: projects.demo.ports.web1: port id 'ovnmeta-web' is taken by the metadata "
                               "port of network 'web' (metadata: true); set a different `id:` on the port")


def test_allocated_vm_addresses_come_after_the_metadata_port():
    doc = _doc()
    del doc["projects"]["demo"]["ports"]["web2"]["fixed_ips"]
    topo = load_document(doc, "t.yaml")
    assert str(topo.ports["web2"].fixed_ips[0].ip_address) == "10.3.0.3"


# -- exports ----------------------------------------------------------------------


def test_nbctl_creates_the_row_and_points_the_ports_at_it(logical):
    commands = nbctl_commands(logical)
    [web] = [c for c in commands if "cidr=10.3.0.0/24" in c]
    ref = web[1]
    assert ref.startswith("--id=@") and web[2:4] == ["create", "DHCP_Options"]
    assert 'options:"mtu"="1442"' in web
    assert 'options:"dns_server"="{192.0.2.53, 192.0.2.54}"' in web
    sets = [web[i + 1:i + 5] for i, a in enumerate(web) if a == "--"]
    assert sets == [["set", "Logical_Switch_Port", "web1", f"dhcpv4_options={ref[5:]}"],
                    ["set", "Logical_Switch_Port", "web2", f"dhcpv4_options={ref[5:]}"]]
    # rows come after every switch port they name
    lsp_adds = [i for i, c in enumerate(commands) if c[1] == "lsp-add"]
    assert commands.index(web) > max(lsp_adds)


def test_show_lists_the_rows_and_still_parses_as_nbctl_show(logical):
    text = show_text(logical)
    assert "    type: localport" in text
    block = text[text.index("(10.3.0.0/24) (aka web-v4)"):]
    assert "\n    mtu=1442\n" in block and "\n    ports: web1 web2\n" in block
    parsed = parse_nbctl_show(text)  # the DHCP blocks are skipped, not misread
    assert "ovnmeta-web" in parsed["switches"]["neutron-web"]["ports"]


# -- against ovn-trace's recorded verdicts ------------------------------------------------


def _recorded():
    return json.loads((DATA / "verdicts.json").read_text())


@pytest.mark.parametrize("name", ["web1_metadata_http", "web1_arp_for_metadata_port", "db1_dhcpdiscover_dhcp_disabled"])
def test_metadata_path_and_dhcp_off_agree_with_ovn_trace(logical, name):
    """Traffic to 169.254.169.254 goes to the metadata port (not the router, not SNAT); no DHCP answer where it is off."""
    case = _recorded()[name]
    sim = Simulator(logical)
    ours = make_verdict(sim.verdict(sim.trace(case["microflow"]))["outputs"])
    assert ours == case["verdict"]


def test_recorded_dhcp_reply_is_what_northd_says():
    """The recorded ovn-trace verdict: the reply goes back out of web1, from server_mac/server_id, ports 67 -> 68."""
    reply = _recorded()["web1_dhcpdiscover"]["verdict"]["outputs"]
    assert [(o["port"], o["eth.dst"], o["ip4.src"], o["udp.src"], o["udp.dst"]) for o in reply] == [
        ("web1", WEB1_MAC, "10.3.0.1", 67, 68)]
    assert "put_dhcp_opts(offerip = 10.3.0.11" in (DATA / "web1_dhcpdiscover.txt").read_text()


def _dhcp(message_type, broadcast=False, src="0.0.0.0", dst="255.255.255.255", dst_mac="ff:ff:ff:ff:ff:ff",
          requested=WEB1_IP):
    options = [("message-type", message_type)]
    if message_type == "request" and requested:
        options.append(("requested_addr", requested))
    options.append("end")
    return (Ether(src=WEB1_MAC, dst=dst_mac) / IP(src=src, dst=dst, ttl=64) / UDP(sport=68, dport=67)
            / BOOTP(op=1, chaddr=bytes.fromhex(WEB1_MAC.replace(":", "")) + b"\0" * 10, xid=0x1234,
                    flags=0x8000 if broadcast else 0)
            / DHCP(options=options))


@pytest.mark.parametrize("message_type,reply_type,broadcast", [("discover", 2, False), ("request", 5, False),
                                                                ("discover", 2, True)])
def test_dhcp_is_answered_as_ovn_controller_answers(topology, logical, message_type, reply_type, broadcast):
    sim = Simulator(logical)
    server_mac = topology.subnet("web-v4").dhcp_server_mac
    result = sim.inject("web1", _dhcp(message_type, broadcast))
    assert [o.port for o in result.outputs] == ["web1"]
    reply = Ether(result.outputs[0].frame)
    assert (reply.src, reply.dst) == (server_mac, WEB1_MAC)
    assert (reply[IP].src, reply[IP].dst) == ("10.3.0.1", "255.255.255.255" if broadcast else WEB1_IP)
    assert (reply[UDP].sport, reply[UDP].dport) == (67, 68)
    assert (reply[BOOTP].op, reply[BOOTP].yiaddr, reply[BOOTP].xid) == (2, WEB1_IP, 0x1234)
    opts = {o[0]: o[1:] for o in reply[DHCP].options if isinstance(o, tuple)}
    assert opts["message-type"] == (reply_type,)
    assert opts["server_id"] == ("10.3.0.1",) and opts["router"] == ("10.3.0.1",)
    assert opts["lease_time"] == (43200,) and opts["subnet_mask"] == ("255.255.255.0",)
    assert opts["name_server"] == ("192.0.2.53", "192.0.2.54")
    assert opts["interface-mtu"] == (1442,)
    assert "classless_static_routes" in opts  # option 121
    assert reply[UDP].chksum == 0 and reply[UDP].len == len(reply[UDP])  # pinctrl leaves it 0
    assert result.outputs[0].kind == "dhcp_reply"
    # the options in the order put_dhcp_opts lists them (by name), after option 53
    codes = [o[0] for o in reply[DHCP].options if isinstance(o, tuple)]
    assert codes == ["message-type", "classless_static_routes", "name_server", "lease_time", "interface-mtu",
                     "subnet_mask", "router", "server_id"]


def _reply(sim, frame, port="web1"):
    result = sim.inject(port, frame)
    return result, [(o.port, o.kind) for o in result.outputs]


@pytest.fixture
def sim(logical):
    return Simulator(logical)


def test_request_for_another_address_gets_a_nak(sim):
    """pinctrl: a DHCPREQUEST whose requested address (option 50, else ciaddr) is not the offer: NAK, no options."""
    for frame in (_dhcp("request", requested="10.3.0.99"), _dhcp("request", requested=None)):
        result, outs = _reply(sim, frame)
        assert outs == [("web1", "dhcp_reply")]
        reply = Ether(result.outputs[0].frame)
        assert reply[BOOTP].yiaddr == "0.0.0.0" and reply[BOOTP].siaddr == "0.0.0.0"
        assert reply[IP].dst == WEB1_IP  # the offer, even in a NAK
        assert [o for o in reply[DHCP].options if isinstance(o, tuple)] == [("message-type", 6)]
    # ciaddr = the offer and no option 50: an ACK (a renewal)
    renew = _dhcp("request", requested=None, src=WEB1_IP, dst="10.3.0.1")
    renew[BOOTP].ciaddr = WEB1_IP
    result, outs = _reply(sim, bytes(renew))
    assert outs == [("web1", "dhcp_reply")]
    assert Ether(result.outputs[0].frame)[DHCP].options[0] == ("message-type", 5)


def test_inform_gets_an_ack_without_address_or_lease(sim):
    result, outs = _reply(sim, _dhcp("inform", src=WEB1_IP, dst="10.3.0.1"))
    assert outs == [("web1", "dhcp_reply")]
    reply = Ether(result.outputs[0].frame)
    opts = {o[0]: o[1:] for o in reply[DHCP].options if isinstance(o, tuple)}
    assert opts["message-type"] == (5,) and reply[BOOTP].yiaddr == "0.0.0.0"
    assert "lease_time" not in opts and "subnet_mask" not in opts and opts["router"] == ("10.3.0.1",)


@pytest.mark.parametrize("message_type", ["release", "decline", 42])
def test_no_reply_and_the_request_goes_on(sim, message_type):
    """RELEASE, DECLINE, unknown types: put_dhcp_opts fails (reg0[3] = 0), the broadcast is switched as any other."""
    result, outs = _reply(sim, _dhcp(message_type))
    assert ("web1", "dhcp_reply") not in outs and ("web2", "packet") in outs


def _bootp(options: bytes, op=1, cookie=b"\x63\x82\x53\x63") -> bytes:
    eth = Ether(src=WEB1_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68,
                                                                                                      dport=67)
    header = bytes([op, 1, 6, 0]) + bytes(24) + bytes.fromhex(WEB1_MAC.replace(":", "")) + bytes(10 + 192)
    return bytes(eth / (header + cookie + options))


@pytest.mark.parametrize("payload,answered", [
    (b"\x35\x01\x01\xff", True),
    (b"\x00" * 4000 + b"\x35\x01\x01", True),            # padding, no end option
    (b"\x35\x01\x01" + b"\x0c\xff" + b"x" * 10, True),    # an option running past the end is ignored
    (b"\x35\x01\x01\x35\x01\x07\xff", False),             # the last message type counts: RELEASE
    (b"\x35\x02\x01\x01\xff", False),                     # type of the wrong length: none
    (b"\x35", False),                                     # cut in the option header
    (b"", False),                                         # no options at all
])
def test_hostile_options_are_read_within_the_packet(sim, payload, answered):
    result, outs = _reply(sim, _bootp(payload))
    assert (("web1", "dhcp_reply") in outs) == answered
    if not answered:
        assert ("web2", "packet") in outs  # the request goes on, unchanged


@pytest.mark.parametrize("frame", [
    _bootp(b"\x35\x01\x01\xff", op=2),                    # a BOOTREPLY
    _bootp(b"\x35\x01\x01\xff", cookie=b"\x63\x82\x53\x00"),
    bytes(Ether(src=WEB1_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
          / UDP(sport=68, dport=67) / (b"\x01" * 100)),  # shorter than a BOOTP header
])
def test_not_a_dhcp_request_is_not_answered(sim, frame):
    _, outs = _reply(sim, frame)
    assert ("web1", "dhcp_reply") not in outs and ("web2", "packet") in outs


def test_no_responder_where_dhcp_is_off_or_the_source_is_not_the_port(sim):
    db1 = bytes(Ether(src="fa:16:3e:05:01:21", dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                / UDP(sport=68, dport=67) / BOOTP(op=1) / DHCP(options=[("message-type", "discover"), "end"]))
    _, outs = _reply(sim, db1, "db1")
    assert all(kind == "packet" for _, kind in outs)
    # from web1's port but a server-side source port: not the responder's match
    frame = _dhcp("discover")
    frame[UDP].sport = 67
    del frame[UDP].chksum
    _, outs = _reply(sim, bytes(frame))
    assert ("web1", "dhcp_reply") not in outs


def test_trace_names_the_dhcp_stages_and_what_pinctrl_did(sim):
    flow = _recorded()["web1_dhcpdiscover"]["microflow"]
    result = sim.trace(flow)
    stages = [(e.stage, e.priority) for e in result.trace if e.datapath == "neutron-web"]
    assert stages[:4] == [("ls_in_check_port_sec", 50), ("ls_in_pre_lb", 110), ("ls_in_dhcp_options", 100),
                          ("ls_in_dhcp_response", 100)]
    options = next(e for e in result.trace if e.stage == "ls_in_dhcp_options")
    assert "put_dhcp_opts(offerip = 10.3.0.11, classless_static_route = " in options.action
    assert "/* DHCPOFFER */" in options.action
    # ovn-trace's verdict for it (recorded): the same output
    assert make_verdict(sim.verdict(result)["outputs"]) == _recorded()["web1_dhcpdiscover"]["verdict"]


def test_unicast_renewal_is_acked_where_ovn_trace_drops_it(sim):
    """ovn-trace keeps ip4.dst = server_id and drops at egress port security; pinctrl sends the ACK to the offer."""
    case = _recorded()["web1_dhcprequest_unicast_renew"]
    assert case["verdict"] == {"dropped": True, "outputs": []}
    result = sim.trace(case["microflow"])
    assert [(o.port, o.kind, o.fields()["ip4.dst"]) for o in result.outputs] == [("web1", "dhcp_reply", WEB1_IP)]


def test_request_cut_by_a_capture_snaplen_is_not_answered(logical):
    """pinctrl reads the options; a capture that cut them cannot say what it answered: no reply is made up."""
    from ovnsim.datapath._fastpath import FastEngine

    engine = FastEngine(logical)
    frame = bytes(_dhcp("discover"))
    port = engine.port_index["web1"]
    whole = engine.process_batch(frame, [0], [len(frame)], [port])
    cut = engine.process_batch(frame[:96], [0], [96], [port], origlens=[len(frame)], trace=True)
    assert [engine.port_names[p] for p in whole.out_port] == ["web1"]
    assert "web1" not in [engine.port_names[p] for p in cut.out_port] and cut.n_outputs >= 1  # switched on


def test_option_encodings_are_ovn_controllers():
    """lib/actions.c encode_put_dhcpv4_option, type by type (lib/ovn-l7.h)."""
    from ovnsim.northd.dhcp import DhcpOptionError, encode_option, encode_options, dhcpv4_responders

    assert encode_option("mtu", "1442") == bytes([26, 2, 0x05, 0xA2])
    assert encode_option("lease_time", "43200") == bytes([51, 4, 0, 0, 0xA8, 0xC0])
    assert encode_option("ip_forward_enable", "1") == bytes([19, 1, 1])
    assert encode_option("dns_server", "{8.8.8.8, 1.1.1.1}") == bytes([6, 8, 8, 8, 8, 8, 1, 1, 1, 1])
    assert encode_option("domain_name", '"openstacklocal"') == bytes([15, 14]) + b"openstacklocal"
    # RFC 3442: significant octets of the destination only; an odd element is ignored
    assert encode_option("classless_static_route", "{10.27.129.0/24,10.0.0.1, 0.0.0.0/0,10.0.0.254, 1.2.3.4}") == \
        bytes([121, 13, 24, 10, 27, 129, 10, 0, 0, 1, 0, 10, 0, 0, 254])
    # RFC 1035 4.1.4 with compression: the example in actions.c (whose comment leaves out xyz's length byte)
    assert encode_option("domain_search_list", '"abc.com,xyz.abc.com"') == \
        bytes([119, 15, 3]) + b"abc" + bytes([3]) + b"com" + bytes([0, 3]) + b"xyz" + bytes([0xC0, 0x00])
    # bootfile_name and next_server first; INFORM leaves out netmask, lease time, T1, T2
    full, inform, nxt = encode_options({"lease_time": "60", "netmask": "255.255.255.0", "next_server": "10.0.0.9",
                                        "bootfile_name": '"pxe.0"', "router": "10.0.0.1"})
    assert [full[0], full[7]] == [67, 253] and nxt == 0x0A000009
    assert bytes([51, 4, 0, 0, 0, 60]) in full and bytes([51, 4]) not in inform and bytes([1, 4]) not in inform
    for name, value in (("no_such_option", "1"), ("mtu", "70000"), ("router", "10.0.0.300"),
                        ("hostname", '"' + "x" * 256 + '"')):
        with pytest.raises(DhcpOptionError):
            encode_option(name, value)
    # a row ovn-controller cannot encode gives no responder, and says why
    doc = _doc()
    logical = compile_topology(load_document(doc, "t.yaml"))
    rows = [r if r.key != "web-v4" else type(r)(r.key, r.cidr, {**r.options, "mtu": "huge"}, r.external_ids)
            for r in logical.dhcp_options]
    import dataclasses
    problems = []
    responders = dhcpv4_responders(dataclasses.replace(logical, dhcp_options=tuple(rows)), problems)
    assert not any(r.port.startswith("web") for r in responders)
    assert problems and problems[0].startswith("DHCP_Options web-v4: port web1: not an integer: huge")
