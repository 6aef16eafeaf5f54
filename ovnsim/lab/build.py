"""Create and delete a lab's Linux objects, with pyroute2's netlink API.

``build(ledger)`` realises the plan the ledger holds: namespaces first
(each written to the ledger before it exists — the ledger is written with
the whole plan before this runs — and its inode recorded once it does),
then, with one netlink socket per namespace closed in ``finally``, the
bridges and veth pairs (created in the switches namespace with the peer
straight in its target namespace, so no interface ever exists in the host's
namespace), then addresses, routes and neighbours, then one ``nft -f`` per
namespace that has rules.  ``teardown(ledger)`` deletes the namespaces the
ledger lists and nothing else.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
from typing import Dict, List

from ovnsim.lab import netns
from ovnsim.lab.ledger import (STATE_TEARING_DOWN, STATE_UP, Ledger, builder_alive, netns_identity,
                               netns_path)
from ovnsim.lab.plan import ROLE_SWITCHES, LabError, LabPlan, LabUnavailableError

#: NUD_NOARP: a static bridge FDB entry (NUD_PERMANENT would make the MAC local to the bridge).
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_MASTER = 0x04
RT_SCOPE_LINK = 253
AF_BRIDGE = 7
#: Seconds one ``nft -f`` may take.
NFT_TIMEOUT = 30


def check_environment() -> None:
    """Raise :class:`LabUnavailableError` naming what is missing for labs on this machine."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (labs create network namespaces; run as root)")
    if not os.path.exists("/proc/self/ns/net"):
        missing.append("network namespace support in the kernel (/proc/self/ns/net)")
    if shutil.which("nft") is None:
        missing.append("nftables (the nft command; Debian: apt-get install nftables)")
    if shutil.which("ip") is None:
        missing.append("iproute2 (the ip command, used by `lab exec`)")
    if missing:
        raise LabUnavailableError("labs need " + "; ".join(missing))


def bridge_conntrack_missing() -> str:
    """Why labs cannot realise security groups on this machine ("" when they can).

    They need conntrack on bridged IPv4, which the kernel's bridge netfilter
    (``br_netfilter``, its sysctls under ``/proc/sys/net/bridge``) provides.
    """
    if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        return ""
    return ("labs of topologies with security groups need the kernel's bridge netfilter for conntrack on "
            "bridged traffic (br_netfilter: modprobe br_netfilter)")


def _ipr():
    from pyroute2 import IPRoute

    return IPRoute()


def _netlink_error(err: Exception, what: str) -> LabError:
    code = getattr(err, "code", None)
    if code in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
        return LabUnavailableError(f"{what}: the kernel does not support it ({err}); labs need veth and bridge "
                                   "support (modules veth, bridge)")
    return LabError(f"{what}: {err}")


def build(ledger: Ledger) -> None:
    """Create every object of the ledger's plan; the ledger is then marked up."""
    plan = ledger.plan
    by_name = {ns.name: ns for ns in plan.namespaces}
    if any(key.startswith("net.bridge.") for ns in plan.namespaces for key in ns.sysctls):
        missing = bridge_conntrack_missing()
        if missing:
            raise LabUnavailableError(missing)
    netns.prepare_run_dir()
    created: List[str] = []

    def setup(name: str) -> None:
        ns = by_name[name]
        netns.write_sysctls(ns.sysctls)
        ipr = _ipr()
        try:
            ipr.link("set", index=1, state="up")  # lo: local programs, the upstream's outside address
            for address in ns.loopback:
                ip, plen = address.split("/")
                ipr.addr("add", index=1, address=ip, prefixlen=int(plen))
        finally:
            ipr.close()

    try:
        def on_created(name: str) -> None:
            created.append(name)
            ledger.note_created(name)

        netns.create_namespaces(by_name, on_created, setup)
    except FileExistsError as err:
        name = os.path.basename(str(err.filename or ""))
        # Not ours: take it off the ledger so no cleanup ever deletes it.
        ledger.data["namespaces"] = [e for e in ledger.namespaces if e["name"] != name]
        ledger.save()
        raise LabError(f"namespace {name} exists already and is not this lab's; not touched") from None
    except OSError as err:
        if err.errno in (errno.EPERM, errno.EINVAL, errno.ENOSYS):
            raise LabUnavailableError(f"cannot create network namespaces: {err}") from None
        raise
    finally:
        ledger.record_identities()

    sw_name = plan.namespace(ROLE_SWITCHES).name
    netns.in_namespaces([sw_name], lambda _name: _build_switches(plan))
    others = [ns.name for ns in plan.namespaces if ns.role != ROLE_SWITCHES]
    netns.in_namespaces(others, lambda name: _build_endpoint(plan, by_name[name]))
    for ns in plan.namespaces:
        if ns.nft:
            _nft(ns.name, ns.nft)
    ledger.data["plan"]["notes"] = plan.notes
    ledger.set_state(STATE_UP)


def _build_switches(plan: LabPlan) -> None:
    ipr = _ipr()
    try:
        for bridge in plan.bridges:
            try:
                ipr.link("add", ifname=bridge.ifname, kind="bridge", mtu=bridge.mtu, br_stp_state=0)
            except Exception as err:
                raise _netlink_error(err, f"creating bridge {bridge.ifname} for {bridge.switch}") from None
        for link in plan.links:
            peer_fd = os.open(netns_path(link.netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("add", ifname=link.bridge_ifname, kind="veth", mtu=link.mtu,
                         peer={"ifname": link.ifname, "net_ns_fd": peer_fd, "address": link.mac,
                               "mtu": link.mtu})
            except Exception as err:
                raise _netlink_error(err, f"creating veth {link.bridge_ifname} for port {link.port}") from None
            finally:
                os.close(peer_fd)
        # One dump for every index (a lookup per link would dump them all each time).
        index = _indexes(ipr)
        for link in plan.links:
            port = index[link.bridge_ifname]
            ipr.link("set", index=port, master=index[link.bridge])
            # OVN floods unknown unicast only to ports whose addresses
            # include "unknown" (and localnet); it knows every other MAC.
            ipr.brport("set", index=port, unicast_flood=1 if link.flood else 0)
            for mac in link.fdb:
                ipr.neigh("add", family=AF_BRIDGE, ifindex=port, lladdr=mac, state=NUD_NOARP, flags=NTF_MASTER)
            ipr.link("set", index=port, state="up")
        for bridge in plan.bridges:
            ipr.link("set", index=index[bridge.ifname], state="up")
    finally:
        ipr.close()


def _indexes(ipr) -> Dict[str, int]:
    return {link.get("ifname"): link["index"] for link in ipr.get_links()}


def _build_endpoint(plan: LabPlan, ns) -> None:
    ipr = _ipr()
    try:
        indexes = _indexes(ipr)
        for link in plan.links:
            if link.netns != ns.name:
                continue
            index = indexes[link.ifname]
            ipr.link("set", index=index, state="up")
            for address in link.addresses:
                ip, plen = address.split("/")
                ipr.addr("add", index=index, address=ip, prefixlen=int(plen))
        for ifname, ip, mac in ns.neighbours:
            ipr.neigh("replace", dst=ip, lladdr=mac, ifindex=indexes[ifname], state=NUD_PERMANENT)
        for dst, hops in ns.routes:
            try:
                if len(hops) == 1:
                    ipr.route("add", dst=dst, gateway=hops[0])
                else:
                    ipr.route("add", dst=dst, multipath=[{"gateway": hop} for hop in hops])
            except Exception as err:
                # A next hop on no connected network: OVN keeps the route and
                # drops what matches it; Linux refuses it.  Noted, not fatal.
                plan.notes.append(f"{ns.name}: route {dst} via {','.join(hops)} not installed: {err}")
        for fip in ns.fip_ports:
            _build_fip_port(ipr, fip, indexes)
    finally:
        ipr.close()


def _build_fip_port(ipr, fip, indexes: Dict[str, int]) -> None:
    """A distributed floating IP's macvlan, its address, neighbours, routing table and rule."""
    try:
        ipr.link("add", ifname=fip.ifname, kind="macvlan", link=indexes[fip.lower], macvlan_mode="bridge",
                 address=fip.mac)
    except Exception as err:
        raise _netlink_error(err, f"creating macvlan {fip.ifname} for floating IP {fip.address}") from None
    index = ipr.link_lookup(ifname=fip.ifname)[0]
    indexes = {**indexes, fip.ifname: index}
    ipr.link("set", index=index, state="up")
    ip, plen = fip.address.split("/")
    ipr.addr("add", index=index, address=ip, prefixlen=int(plen))
    for neighbour_ip, mac in fip.neighbours:
        ipr.neigh("replace", dst=neighbour_ip, lladdr=mac, ifindex=index, state=NUD_PERMANENT)
    for dst, hop, dev in fip.routes:
        spec = {"dst": dst, "table": fip.table}
        if dev:
            spec["oif"] = indexes[dev]
        if hop:
            spec["gateway"] = hop
        else:
            spec["scope"] = RT_SCOPE_LINK
        ipr.route("add", **spec)
    ipr.rule("add", src=fip.logical_ip, src_len=32, table=fip.table, priority=fip.table)


def _nft(name: str, ruleset: str) -> None:
    """Load ``ruleset`` into namespace ``name`` (one nft process per namespace)."""
    try:
        proc = subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=ruleset, text=True,
                              capture_output=True, timeout=NFT_TIMEOUT)
    except FileNotFoundError as err:
        raise LabUnavailableError(f"labs need nftables and iproute2: {err}") from None
    if proc.returncode != 0:
        message = proc.stderr.strip().splitlines()
        raise LabError(f"nft in {name} failed: {message[0] if message else proc.returncode}")


def teardown(ledger: Ledger, force: bool = False) -> List[str]:
    """Delete every namespace the ledger lists (that is still the lab's), then the ledger.

    Idempotent: a namespace already gone is skipped; one whose inode is not
    the one recorded belongs to someone else and is left alone (and
    reported).  Returns the names left alone.  Raises :class:`LabError` if
    the lab is still being built by a live process (unless ``force``).
    """
    if builder_alive(ledger) and not force:
        raise LabError(f"lab {ledger.name!r} is being built by process {ledger.data.get('pid')}; "
                       "wait for it or kill it first")
    ledger.data["state"] = STATE_TEARING_DOWN
    ledger.save()
    left_alone, failed = [], []
    for entry in reversed(list(ledger.namespaces)):
        name = entry["name"]
        ident = netns_identity(name)
        path = netns_path(name)
        if ident is None:
            # A mount point left empty by a crash between creating and
            # mounting it (the ledger had the name first): ours to remove.
            if entry["id"] is None and path.is_file() and path.stat().st_size == 0:
                try:
                    path.unlink()
                except OSError:
                    pass
            continue
        if entry["id"] is not None and list(entry["id"]) != ident:
            left_alone.append(name)
            continue
        try:
            netns.delete_namespace(name)
        except OSError as err:
            failed.append(f"{name}: {err.strerror or err}")
    if failed:
        ledger.data["namespaces"] = [e for e in ledger.namespaces
                                     if any(f.startswith(e["name"] + ":") for f in failed)]
        ledger.save()
        raise LabError(f"lab {ledger.name!r}: could not delete " + "; ".join(failed))
    ledger.remove()
    return left_alone


def open_packet_socket(ns_name: str, ifname: str) -> socket.socket:
    """An AF_PACKET socket bound to ``ifname`` in namespace ``ns_name`` (all protocols)."""

    def work():
        netns.enter(ns_name)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        try:
            sock.bind((ifname, 0x0003))
        except OSError:
            sock.close()
            raise
        return sock

    return netns.run_in_thread(work)
