"""ovnsim: an emulator of OVN's logical data path for Neutron-style topologies.

Load a topology file, compile it to OVN logical objects, and (in later
modules) push frames through it::

    import ovnsim
    topo = ovnsim.load_topology("topologies/reference.yaml")
    logical = ovnsim.compile_topology(topo)
"""

from ovnsim.errors import MicroflowError, NotSupportedError, OvnsimError, TopologyError

__all__ = [
    "OvnsimError",
    "TopologyError",
    "NotSupportedError",
    "MicroflowError",
    "load_topology",
    "compile_topology",
]

__version__ = "0.1.0"


def load_topology(path):
    """Read a topology file (YAML) into a checked :class:`ovnsim.neutron.model.Topology`."""
    from ovnsim.neutron.loader import load_topology as _load

    return _load(path)


def compile_topology(topology):
    """Compile a tenant topology into a :class:`ovnsim.nb.model.LogicalTopology`."""
    from ovnsim.neutron.compiler import compile_topology as _compile

    return _compile(topology)
