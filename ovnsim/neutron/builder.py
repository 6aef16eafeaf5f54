"""Build topologies in Python code instead of YAML.

The builder only assembles the same document a topology file holds and hands
it to :func:`ovnsim.neutron.loader.load_document`, so a topology built in code gets
exactly the checks, defaults and error messages of a file (with the source
``"<builder>"``)::

    b = TopologyBuilder("demo-topo")
    b.external_network("public", cidr="172.24.4.0/24", gateway_ip="172.24.4.1",
                       physical_network="physnet1")
    p = b.project("demo")
    p.network("web", cidr="10.0.0.0/24")       # one subnet, named "web-v4"
    p.port("vm1", network="web", ip="10.0.0.11")
    p.router("r1", interfaces=["web-v4"], external_gateway="public")
    p.floating_ip("fip1", "172.24.4.100", port="vm1")
    topo = b.build()

Keyword arguments carry the file's key names (docs/topology-format.md).  An
argument left at ``None`` is left out of the document, so the file's default
applies.  Addresses may be given as strings or :mod:`ipaddress` objects.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from typing import Any, Dict, Iterable, Optional, Union

from ovnsim.errors import TopologyError
from ovnsim.neutron.loader import load_document
from ovnsim.neutron.model import Topology

__all__ = ["TopologyBuilder", "ProjectBuilder", "BUILDER_SOURCE"]

#: The ``source`` of topologies (and errors) that come from the builder.
BUILDER_SOURCE = "<builder>"

Address = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]
CIDR = Union[str, ipaddress.IPv4Network, ipaddress.IPv6Network]


def _plain(value: Any) -> Any:
    """``value`` as the plain YAML-like data a topology document holds."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _given(**keys: Any) -> Dict[str, Any]:
    """The keyword arguments that were given (not None), as document keys."""
    return {k: _plain(v) for k, v in keys.items() if v is not None}


def _add(mapping: Dict[str, Any], name: str, value: Dict[str, Any], kind: str, path: str) -> str:
    # A mapping can hold a name once, as in YAML (where the loader refuses
    # duplicate keys): a second definition is a mistake, not an update.
    if name in mapping:
        raise TopologyError(f"{kind} {name!r} is already defined", path, BUILDER_SOURCE)
    mapping[name] = value
    return name


def _subnets(
    name: str,
    cidr: Optional[CIDR],
    gateway_ip: Optional[Address],
    subnets: Optional[Mapping[str, Any]],
    path: str,
    **extra: Any,
) -> Optional[Dict[str, Any]]:
    """The ``subnets`` mapping of a network from the ``cidr=`` shorthand or ``subnets=``."""
    if cidr is not None and subnets is not None:
        raise TopologyError("give either cidr= (one subnet) or subnets=, not both", path, BUILDER_SOURCE)
    if subnets is not None:
        return _plain(subnets)
    if cidr is None:
        if gateway_ip is not None or any(v is not None for v in extra.values()):
            raise TopologyError("gateway_ip= and gateway_mac= need cidr=", path, BUILDER_SOURCE)
        return None
    return {f"{name}-v4": _given(cidr=cidr, gateway_ip=gateway_ip, **extra)}


class TopologyBuilder:
    """Assembles a topology document; :meth:`build` checks and resolves it.

    ``name`` and ``description`` are the file's top-level keys.
    """

    def __init__(self, name: Optional[str] = None, description: Optional[str] = None):
        self._doc: Dict[str, Any] = _given(name=name, description=description)
        self._projects: Dict[str, ProjectBuilder] = {}

    def external_network(
        self,
        name: str,
        cidr: Optional[CIDR] = None,
        *,
        gateway_ip: Optional[Address] = None,
        gateway_mac: Optional[str] = None,
        subnets: Optional[Mapping[str, Mapping[str, Any]]] = None,
        physical_network: Optional[str] = None,
        network_type: Optional[str] = None,
        segmentation_id: Optional[int] = None,
        mtu: Optional[int] = None,
        id: Optional[str] = None,
    ) -> str:
        """Add an external (provider) network; returns its name.

        ``cidr`` (with ``gateway_ip``, the upstream router's address, and
        ``gateway_mac``, its MAC) makes one subnet named ``<name>-v4``;
        ``subnets`` gives the ``subnets`` mapping in full instead.
        ``physical_network``, ``network_type`` and ``segmentation_id`` are the
        ``provider`` keys.
        """
        path = f"external_networks.{name}"
        network = _given(id=id)
        network["provider"] = _given(
            physical_network=physical_network, network_type=network_type, segmentation_id=segmentation_id
        )
        network.update(_given(mtu=mtu))
        subnet_map = _subnets(name, cidr, gateway_ip, subnets, path, gateway_mac=gateway_mac)
        if subnet_map is not None:
            network["subnets"] = subnet_map
        return _add(self._doc.setdefault("external_networks", {}), name, network, "external network", path)

    def project(self, name: str, description: Optional[str] = None) -> "ProjectBuilder":
        """The builder of project ``name``, created on first use."""
        if name not in self._projects:
            self._projects[name] = ProjectBuilder(self._doc.setdefault("projects", {}), name)
        if description is not None:
            self._projects[name].description = description
        return self._projects[name]

    def document(self) -> Dict[str, Any]:
        """The topology document built so far: what a topology file would hold.

        A copy: changing it does not change the builder.
        """
        return copy.deepcopy(self._doc)

    def build(self) -> Topology:
        """Check and resolve the document into a :class:`~ovnsim.neutron.model.Topology`.

        Raises :class:`~ovnsim.errors.TopologyError` (source ``"<builder>"``)
        exactly where loading the same document from a file would.
        """
        return load_document(self.document(), BUILDER_SOURCE)


class ProjectBuilder:
    """Adds networks, ports, routers and floating IPs to one project.

    Obtained from :meth:`TopologyBuilder.project`.  Every ``add`` method
    returns the object's name, to be used in references.
    """

    def __init__(self, projects: Dict[str, Any], name: str):
        self.name = name
        self._doc: Dict[str, Any] = projects.setdefault(name, {})
        self._path = f"projects.{name}"

    @property
    def description(self) -> Optional[str]:
        """The project's description (None when not set)."""
        return self._doc.get("description")

    @description.setter
    def description(self, text: str) -> None:
        self._doc["description"] = text

    def _section(self, key: str) -> Dict[str, Any]:
        return self._doc.setdefault(key, {})

    def network(
        self,
        name: str,
        cidr: Optional[CIDR] = None,
        *,
        gateway_ip: Optional[Address] = None,
        subnets: Optional[Mapping[str, Mapping[str, Any]]] = None,
        mtu: Optional[int] = None,
        id: Optional[str] = None,
    ) -> str:
        """Add a network; returns its name.

        ``cidr`` (and ``gateway_ip``) make one subnet named ``<name>-v4``;
        ``subnets`` gives the ``subnets`` mapping in full instead, e.g.
        ``{"web-v4": {"cidr": "10.0.0.0/24", "gateway_ip": None}}`` for a
        subnet without a gateway.
        """
        path = f"{self._path}.networks.{name}"
        network = _given(id=id, mtu=mtu)
        subnet_map = _subnets(name, cidr, gateway_ip, subnets, path)
        if subnet_map is not None:
            network["subnets"] = subnet_map
        return _add(self._section("networks"), name, network, "network", path)

    def port(
        self,
        name: str,
        network: str,
        *,
        ip: Optional[Address] = None,
        fixed_ips: Optional[Iterable[Union[Address, Mapping[str, Any]]]] = None,
        mac_address: Optional[str] = None,
        port_security: Optional[bool] = None,
        allowed_address_pairs: Optional[Iterable[Mapping[str, Any]]] = None,
        admin_state_up: Optional[bool] = None,
        security_groups: Optional[Iterable[str]] = None,
        id: Optional[str] = None,
    ) -> str:
        """Add a port on ``network`` (a network name of this project); returns its name.

        ``ip`` is short for ``fixed_ips=[ip]``; ``fixed_ips`` entries are
        addresses, ``{"subnet": ..., "ip_address": ...}`` or ``{"subnet": ...}``.
        Without either, the port gets the lowest free address of the
        network's first subnet.
        """
        path = f"{self._path}.ports.{name}"
        if ip is not None and fixed_ips is not None:
            raise TopologyError("give either ip= or fixed_ips=, not both", path, BUILDER_SOURCE)
        if ip is not None:
            fixed_ips = [ip]
        port = _given(
            id=id,
            network=network,
            fixed_ips=None if fixed_ips is None else list(fixed_ips),
            mac_address=mac_address,
            port_security=port_security,
            allowed_address_pairs=None if allowed_address_pairs is None else list(allowed_address_pairs),
            admin_state_up=admin_state_up,
            security_groups=None if security_groups is None else list(security_groups),
        )
        return _add(self._section("ports"), name, port, "port", path)

    def security_group(
        self,
        name: str,
        rules: Iterable[Mapping[str, Any]] = (),
        *,
        stateful: Optional[bool] = None,
        default_rules: Optional[bool] = None,
        description: Optional[str] = None,
        id: Optional[str] = None,
    ) -> str:
        """Add a security group (and so turn security groups on for the project); returns its name.

        ``rules`` are mappings with the file's keys (``direction``,
        ``protocol``, ``port_range``, ``remote_ip_prefix``, ``remote_group``...).
        A project that has any group also has ``default``; :meth:`enable_security_groups`
        turns them on without adding one.
        """
        path = f"{self._path}.security_groups.{name}"
        group = _given(id=id, stateful=stateful, default_rules=default_rules, description=description,
                       rules=[dict(r) for r in rules] or None)
        return _add(self._section("security_groups"), name, group, "security group", path)

    def enable_security_groups(self) -> None:
        """Declare ``security_groups: {}``: the project gets Neutron's ``default`` group and filters its ports."""
        self._section("security_groups")

    def router(
        self,
        name: str,
        *,
        interfaces: Optional[Iterable[Union[str, Mapping[str, Any]]]] = None,
        routes: Optional[Iterable[Union[Mapping[str, Any], tuple]]] = None,
        external_gateway: Optional[Union[str, Mapping[str, Any]]] = None,
        gateway_model: Optional[str] = None,
        chassis: Optional[str] = None,
        admin_state_up: Optional[bool] = None,
        id: Optional[str] = None,
    ) -> str:
        """Add a router; returns its name.

        ``interfaces``: subnet names of this project (the router takes the
        subnet's gateway_ip) or ``{"subnet": ..., "ip_address": ...}``.
        ``routes``: ``{"destination": ..., "nexthop": ...}`` mappings or
        ``(destination, nexthop)`` pairs.  ``external_gateway``: an external
        network's name, or ``{"network": ..., "ip_address": ..., "enable_snat": ...}``.
        """
        path = f"{self._path}.routers.{name}"
        if isinstance(external_gateway, str):
            external_gateway = {"network": external_gateway}
        if routes is not None:
            routes = [
                r if isinstance(r, Mapping) else {"destination": r[0], "nexthop": r[1]} for r in routes
            ]
        router = _given(
            id=id,
            gateway_model=gateway_model,
            chassis=chassis,
            interfaces=None if interfaces is None else list(interfaces),
            routes=routes,
            external_gateway=external_gateway,
            admin_state_up=admin_state_up,
        )
        return _add(self._section("routers"), name, router, "router", path)

    def floating_ip(
        self,
        name: str,
        floating_ip_address: Address,
        port: str,
        *,
        fixed_ip_address: Optional[Address] = None,
        network: Optional[str] = None,
        distributed: Optional[bool] = None,
        stateless: Optional[bool] = None,
        id: Optional[str] = None,
    ) -> str:
        """Add a floating IP bound to ``port`` (a port name of this project); returns its name.

        ``fixed_ip_address`` defaults to the port's first address, ``network``
        to the gateway network of the router that reaches the port.
        """
        path = f"{self._path}.floating_ips.{name}"
        fip = _given(
            id=id,
            floating_ip_address=floating_ip_address,
            port=port,
            fixed_ip_address=fixed_ip_address,
            network=network,
            distributed=distributed,
            stateless=stateless,
        )
        return _add(self._section("floating_ips"), name, fip, "floating IP", path)
