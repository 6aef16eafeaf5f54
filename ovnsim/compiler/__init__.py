"""The topology compiler: tenant model -> OVN logical objects (-> pipeline tables).

``compile_topology`` is the one entry point; ``ovnsim.compiler.logical``
holds the Neutron -> OVN northbound mapping.
"""

from __future__ import annotations

from ovnsim.compiler.logical import compile_logical
from ovnsim.model import LogicalTopology, Topology

__all__ = ["compile_topology"]


def compile_topology(topology: Topology) -> LogicalTopology:
    """Compile a checked tenant topology into OVN northbound logical objects.

    Raises :class:`ovnsim.errors.TopologyError` for the one inconsistency
    only the compiler can see: a subnet overlapping the join network of the
    gateway-router model.
    """
    return compile_logical(topology)
