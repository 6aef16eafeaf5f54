"""DHCP and metadata on real OVN's data path and on ovnsim: the same frames leave the same ports, byte for byte.

On ``topologies/dhcp-metadata.yaml`` a :class:`~ovnsim.testing.realdp.RealDatapath`
(ovn-controller's pinctrl answers ``put_dhcp_opts`` for real) and
:class:`~ovnsim.sim.Simulator` each get the same requests: DISCOVER and
REQUEST (unicast and broadcast replies), a renewal to the server, a REQUEST
for another address (NAK), INFORM, RELEASE and DECLINE (no reply: switched
on), requests with IPv4 options, Ethernet padding, a TOS and odd options, a
DHCP-disabled port, and cloud-init's TCP SYN to 169.254.169.254 sent to the
metadata port.  No field of a reply is left out of the comparison: pinctrl
puts no timestamp or random value in it (``secs`` and ``xid`` are the
request's).
"""

from __future__ import annotations

import os

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP, IPOption_RR
from scapy.layers.l2 import Ether

from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.sim import Simulator
from ovnsim.testing.realdp import RealDatapath

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB1_MAC, WEB1_IP, SERVER = "fa:16:3e:05:00:11", "10.3.0.11", "10.3.0.1"
DB1_MAC = "fa:16:3e:05:01:21"


def _dhcp(message_type, *, mac=WEB1_MAC, src="0.0.0.0", dst="255.255.255.255", requested=None, flags=0,
          ip_options=None, tos=0, extra=(), pad=b"", secs=7):
    options = [("message-type", message_type)]
    if requested:
        options.append(("requested_addr", requested))
    options += list(extra) + ["end"]
    ip = IP(src=src, dst=dst, ttl=64, tos=tos, id=0x4242, options=ip_options or [])
    pkt = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ip / UDP(sport=68, dport=67)
           / BOOTP(op=1, chaddr=bytes.fromhex(mac.replace(":", "")) + bytes(10), xid=0xC0FFEE, secs=secs,
                   flags=flags) / DHCP(options=options))
    return bytes(pkt) + pad


CASES = {
    "discover": ("web1", _dhcp("discover")),
    "discover-broadcast-flag": ("web1", _dhcp("discover", flags=0x8000)),
    "request": ("web1", _dhcp("request", requested=WEB1_IP)),
    "request-broadcast-flag": ("web1", _dhcp("request", requested=WEB1_IP, flags=0x8000)),
    "renewal-to-server": ("web1", _dhcp("request", src=WEB1_IP, dst=SERVER)),
    "request-other-address": ("web1", _dhcp("request", requested="10.3.0.99")),
    "inform": ("web1", _dhcp("inform", src=WEB1_IP, dst=SERVER)),
    "release": ("web1", _dhcp("release", src=WEB1_IP, dst=SERVER)),
    "decline": ("web1", _dhcp("decline", requested=WEB1_IP)),
    "ip-options-tos-padding": ("web1", _dhcp("discover", ip_options=[IPOption_RR()], tos=0x10, pad=bytes(30))),
    "odd-options": ("web1", _dhcp("discover", extra=["pad", ("hostname", b"web1"), "pad",
                                                     ("param_req_list", list(range(1, 60)))])),
    "dhcp-off-port": ("db1", _dhcp("discover", mac=DB1_MAC)),
    "metadata-syn": ("web1", None),
}


@pytest.fixture(scope="module")
def sides():
    ok, reason = RealDatapath.available()
    if not ok:
        if os.environ.get("OVNSIM_REQUIRE_REAL_OVN", "") not in ("", "0"):
            pytest.fail(f"OVNSIM_REQUIRE_REAL_OVN is set but {reason}")
        pytest.skip(reason)
    logical = compile_topology(load_topology(os.path.join(ROOT, "topologies", "dhcp-metadata.yaml")))
    dp = RealDatapath().start()
    try:
        dp.load(logical)
        yield logical, dp, Simulator(logical)
    finally:
        dp.stop()


def _frame(logical, name):
    port, frame = CASES[name]
    if frame is None:
        meta_mac, meta_ip = logical.switch_ports()["ovnmeta-web"][1].addresses[0].split()
        frame = bytes(Ether(src=WEB1_MAC, dst=meta_mac) / IP(src=WEB1_IP, dst="169.254.169.254", id=1)
                      / TCP(sport=41000, dport=80, flags="S"))
    return port, frame


@pytest.mark.parametrize("name", list(CASES))
def test_same_frames_leave_the_same_ports(sides, name):
    logical, dp, sim = sides
    port, frame = _frame(logical, name)
    dp.reset()
    sim.reset()
    real = {p: sorted(fs) for p, fs in dp.inject(port, frame).outputs.items() if fs}
    ours = {}
    for out in sim.inject(port, frame).outputs:
        ours.setdefault(out.port, []).append(bytes(out.frame))
    ours = {p: sorted(fs) for p, fs in ours.items()}
    assert ours == real, "\n".join(f"{side} {p}: {f.hex()}" for side, d in (("ovn", real), ("ovnsim", ours))
                                   for p, fs in sorted(d.items()) for f in fs)
    if name in ("release", "decline", "dhcp-off-port"):
        assert "web1" not in real  # no reply: the request was switched on
    elif name != "metadata-syn":
        assert list(real) == ["web1"] and Ether(real["web1"][0])[BOOTP].op == 2  # a reply
    if name == "metadata-syn":
        assert list(real) == ["ovnmeta-web"]  # the localport, not the router (no SNAT)


def test_vm_tap_capture_of_a_boot_replays_with_the_real_offer_and_ack_matched(sides, tmp_path):
    """A VM's tap as tcpdump records it on real OVN (its DHCP requests and pinctrl's replies, in order),
    replayed with ``--port web1 --only-from-port``: the requests enter, and the OFFER and ACK the VM
    received are exactly what ovnsim delivered to it."""
    from ovnsim.capture.pcap import PcapWriter
    from ovnsim.capture.replay import replay

    logical, dp, _sim = sides
    dp.reset()
    tap = []
    for request in (_dhcp("discover"), _dhcp("request", requested=WEB1_IP)):
        tap.append(request)
        tap += dp.inject("web1", request).outputs.get("web1", [])
    assert len(tap) == 4
    capture = tmp_path / "tap.pcap"
    with PcapWriter(str(capture)) as writer:
        for i, frame in enumerate(tap):
            writer.write(frame, 1_700_000_000 * 10**9 + i * 1000)
    summary = replay(logical, capture, tmp_path / "out", port="web1", only_from_port=True)
    assert {k: summary.tap[k] for k in ("sent", "received", "matched", "mismatched", "unseen")} == {
        "sent": 2, "received": 2, "matched": 2, "mismatched": 0, "unseen": 0}
    assert summary.generated["dhcp_reply"] == 2


#: DHCP_Options Neutron does not write by default (extra_dhcp_opts, other CMSs): one of every option type.
EXTRA_OPTIONS = {
    "domain_name": '"openstacklocal"', "domain_search_list": '"abc.com,xyz.abc.com,abc.co"',
    "ntp_server": "{192.0.2.123, 192.0.2.124}", "T1": "21600", "T2": "37800", "ip_forward_enable": "0",
    "bootfile_name": '"pxelinux.0"', "next_server": "10.3.0.5", "tftp_server": '"tftp.example"',
    "default_ttl": "64", "wpad": '"http://wpad/wpad.dat"', "ms_classless_static_route": "{10.0.0.0/8,10.3.0.254}",
    "broadcast_address": "10.3.0.255", "arp_cache_timeout": "300",
}


def test_every_option_type_is_encoded_as_ovn_controller_encodes_it(tmp_path):
    """A row with options of every type (strings, domain lists, uint8/16/32, bool, address lists,
    static routes, host_id, bootfile_name and next_server, which set siaddr): OFFER, ACK and
    the ACK to an INFORM are byte-identical with real OVN's."""
    import dataclasses

    ok, reason = RealDatapath.available()
    if not ok:
        pytest.skip(reason)
    logical = compile_topology(load_topology(os.path.join(ROOT, "topologies", "dhcp-metadata.yaml")))
    rows = tuple(dataclasses.replace(r, options={**r.options, **EXTRA_OPTIONS}) if r.key == "web-v4" else r
                 for r in logical.dhcp_options)
    logical = dataclasses.replace(logical, dhcp_options=rows)
    sim = Simulator(logical)
    frames = [_dhcp("discover"), _dhcp("request", requested=WEB1_IP), _dhcp("inform", src=WEB1_IP, dst=SERVER)]
    with RealDatapath() as dp:
        dp.load(logical)
        for frame in frames:
            real = dp.inject("web1", frame).outputs
            ours = {}
            for out in sim.inject("web1", frame).outputs:
                ours.setdefault(out.port, []).append(bytes(out.frame))
            assert ours == real
            reply = Ether(real["web1"][0])
            assert reply[BOOTP].op == 2
    assert reply[BOOTP].siaddr == "0.0.0.0"  # INFORM: siaddr as the request had it, not next_server
    offer = Ether(sim.inject("web1", frames[0]).outputs[0].frame)
    assert offer[BOOTP].siaddr == "10.3.0.5"
