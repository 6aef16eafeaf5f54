"""Documented exceptions between the frozen oracle and the C engine, shared by the differential tests.

The oracle is frozen: where the engine was fixed to do what real OVN does
and the oracle was not, the differential tests excuse exactly that case,
named here once, with the real-OVN test that shows the engine is right.
"""

from __future__ import annotations

from ovnsim.datapath.engine import STAGE_LIST
from ovnsim.northd.stages import Drop

from .engine import PythonEngine

#: ethertypes the oracle and the engine both treat by their headers (IPv4, ARP, IPv6, 802.1Q, 802.1ad)
_HEADER_ETHERTYPES = (b"\x08\x00", b"\x08\x06", b"\x86\xdd", b"\x81\x00", b"\x88\xa8")


def is_l2_only(frame: bytes) -> bool:
    """A whole Ethernet header whose ethertype is none the pipeline reads further (LLDP, garbage types)."""
    return len(frame) >= 14 and frame[12:14] not in _HEADER_ETHERTYPES


def l2_port_security_exception(frame: bytes, got) -> bool:
    """A frame neither IP nor ARP that the engine dropped at port security (documented exception).

    Real OVN admits only ARP and IP from a port whose port_security lists
    addresses (LLDP from such a port is dropped:
    test_realdp_known.py::test_lldp_from_a_port_with_port_security_is_dropped);
    the frozen oracle admits any ethertype with the port's MAC.  Such a frame
    changes no state, so the frames after it stay comparable.  ``got``: the
    engine's (outputs, drops) for the frame, drops as (reason, stage, ...).
    """
    outputs, drops = got
    return is_l2_only(frame) and not outputs and [d[:2] for d in drops] == [("port-security", "ls_in_apply_port_sec")]


class OracleWithL2PortSecurity(PythonEngine):
    """The frozen oracle, but a frame of :func:`is_l2_only` gets the C engine's port-security verdict.

    For replays compared file by file with the engine: the one frame kind
    :func:`l2_port_security_exception` excuses is asked of a C engine kept
    beside the oracle (such a frame changes no state, so a separate engine's
    verdict is the engine's verdict); when that is the port-security drop,
    the oracle records the same drop instead of flooding the frame.
    """

    def __init__(self, logical, tables=None):
        from ovnsim.datapath._fastpath import FastEngine

        super().__init__(logical, tables)
        self._engine = FastEngine(logical)

    def _one(self, i: int, raw: bytes, inport: int, result) -> None:
        if is_l2_only(raw):
            verdict = self._engine.process_batch(raw, [0], [len(raw)], [inport])
            if (not verdict.n_outputs and verdict.n_drops == 1 and verdict.drop_reason[0] == Drop.PORT_SECURITY
                    and STAGE_LIST[verdict.drop_stage[0]].name == "ls_in_apply_port_sec"):
                port = verdict.ingress[0]
                result.ingress.append(port)
                self._drop(result, i, Drop.PORT_SECURITY, "ls_in_apply_port_sec",
                           self.tables.switch_of_port[self.port_names[port]])
                return
        super()._one(i, raw, inport, result)


def dgp_hairpin_cell_exception(engine_cell, oracle_cell) -> bool:
    """A reachability cell the oracle fails at lr_in_arp_resolve (nat-address) on the way back, the engine passes.

    Documented exception (the per-frame form is test_engines.py's
    ``_dgp_hairpin_exception``): on a distributed-gateway-port router OVN's
    lr_out_chk_dnat_local marks every NAT address, so the reply of a hairpin
    to a floating IP through the router's SNAT address is looped back,
    un-SNATed and delivered (real OVN: test_realdp_known.py::
    test_hairpin_reply_through_the_snat_address_comes_back_on_a_dgp_router);
    the frozen oracle marks DNAT addresses only and drops it.
    """
    return (engine_cell.reachable and not oracle_cell.reachable
            and (oracle_cell.direction, oracle_cell.disposition, oracle_cell.stage)
            == ("return", "nat-address", "lr_in_arp_resolve")
            and (engine_cell.src, engine_cell.dst, engine_cell.proto, engine_cell.seen_as)
            == (oracle_cell.src, oracle_cell.dst, oracle_cell.proto, oracle_cell.seen_as))
