"""Test support: real OVN as a reference, and parsers for its output.

* :mod:`ovnsim.testing.realovn` -- :class:`~ovnsim.testing.realovn.RealOVN`
  runs ovsdb-server (NB, SB), ovn-northd and ovn-trace as plain processes in
  a temporary directory (unix sockets, no root) and drives them.
* :mod:`ovnsim.testing.realdp` -- :class:`~ovnsim.testing.realdp.RealDatapath`
  runs real OVN's whole data path (ovs-vswitchd with the dummy datapath and
  ovn-controller besides NB/SB and northd) as child processes and injects
  frames: the stateful reference (docs/real-datapath.md).
* :mod:`ovnsim.testing.compare` -- ``ovnsim compare``: a capture through
  ovnsim and the real data path, a microflow through ovnsim and ovn-trace.
* :mod:`ovnsim.testing.nbshow` -- parsers for ``ovn-nbctl show``,
  ``lr-route-list`` and ``lr-nat-list`` output (the format ``ovnsim show``
  reproduces).
* :mod:`ovnsim.testing.plugin` -- the pytest plugin (fixtures ``ovn_topology``,
  ``ovn_sim``) and the reachability assertions ``assert_reachable``,
  ``assert_isolated``, ``assert_snat``, ``assert_fip``, ``assert_packets``.

Importing this package starts nothing; the heavy modules load on first use.
"""

from __future__ import annotations

__all__ = ["RealOVN", "RealOVNError", "RealDatapath", "parse_nbctl_show", "parse_lr_route_list", "assert_reachable",
           "assert_isolated", "assert_snat", "assert_fip", "assert_packets"]

_ASSERTIONS = ("assert_reachable", "assert_isolated", "assert_snat", "assert_fip", "assert_packets")


def __getattr__(name):
    if name in ("RealOVN", "RealOVNError"):
        from ovnsim.testing import realovn

        return getattr(realovn, name)
    if name == "RealDatapath":
        from ovnsim.testing import realdp

        return realdp.RealDatapath
    if name in ("parse_nbctl_show", "parse_lr_route_list"):
        from ovnsim.testing import nbshow

        return getattr(nbshow, name)
    if name in _ASSERTIONS:
        from ovnsim.testing import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module 'ovnsim.testing' has no attribute {name!r}")
