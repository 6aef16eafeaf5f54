"""Logical topology -> a networkx graph, drawn as Graphviz dot or Mermaid.

Nodes are logical switches, logical routers, VM ports and the provider
networks behind localnet ports; edges are the links between them (a VM port
on its switch, a router port peered with a router-type switch port).  Every
node has a ``kind`` (``switch``, ``router``, ``gateway-router``, ``vm``,
``provider``) and a ``label``; every edge a ``label`` (the port name and,
for router ports, its networks).
"""

from __future__ import annotations

import json
from typing import List

import networkx as nx

from ovnsim.nb.model import LSP_TYPE_LOCALNET, LSP_TYPE_ROUTER, LogicalTopology

__all__ = ["logical_graph", "to_dot", "to_mermaid", "FORMATS"]

FORMATS = ("dot", "mermaid")


def logical_graph(logical: LogicalTopology) -> nx.Graph:
    """Build the undirected graph of ``logical`` (node ids: ``ls:NAME``, ``lr:NAME``, ``vm:NAME``, ``net:PHYSNET``)."""
    graph = nx.Graph(name=logical.source)
    router_ports = logical.router_ports()
    for lr in logical.routers:
        kind = "gateway-router" if lr.is_gateway_router else "router"
        extra = f"\\nchassis {lr.options['chassis']}" if lr.is_gateway_router else ""
        nat = f"\\n{len(lr.nat)} NAT rules" if lr.nat else ""
        graph.add_node(f"lr:{lr.name}", kind=kind, label=f"{lr.name}{extra}{nat}")
    for ls in logical.switches:
        graph.add_node(f"ls:{ls.name}", kind="switch", label=ls.name)
        for port in ls.ports:
            if port.type == LSP_TYPE_ROUTER:
                peer = port.options.get("router-port", "")
                if peer in router_ports:
                    lr, lrp = router_ports[peer]
                    gw = " (gateway)" if lrp.is_gateway_port else ""
                    graph.add_edge(f"ls:{ls.name}", f"lr:{lr.name}",
                                   label=f"{lrp.name} {' '.join(lrp.networks)}{gw}")
            elif port.type == LSP_TYPE_LOCALNET:
                physnet = port.options.get("network_name", port.name)
                graph.add_node(f"net:{physnet}", kind="provider", label=f"provider {physnet}")
                graph.add_edge(f"ls:{ls.name}", f"net:{physnet}", label=port.name)
            else:
                addresses = " ".join(a for a in port.addresses if a != "unknown")
                graph.add_node(f"vm:{port.name}", kind="vm", label=f"{port.name}\\n{addresses}")
                graph.add_edge(f"ls:{ls.name}", f"vm:{port.name}", label="")
    return graph


def _dot_quote(text: str) -> str:
    # Graphviz strings: escape quotes and real backslashes, but keep the
    # "\\n" the labels use as Graphviz's own line-break escape.
    return '"' + text.replace("\\n", "\0").replace("\\", "\\\\").replace('"', '\\"').replace("\0", "\\n") + '"'


_DOT_SHAPES = {"switch": "box", "router": "ellipse", "gateway-router": "doubleoctagon",
               "vm": "note", "provider": "cloud"}


def to_dot(graph: nx.Graph) -> str:
    """Graphviz ``graph`` text (``dot -Tsvg`` draws it)."""
    lines: List[str] = [f"graph {_dot_quote(graph.graph.get('name') or 'ovnsim')} {{", "  node [fontsize=10];"]
    for node, data in graph.nodes(data=True):
        lines.append(f"  {_dot_quote(node)} [label={_dot_quote(data['label'])}, "
                     f"shape={_DOT_SHAPES[data['kind']]}];")
    for a, b, data in graph.edges(data=True):
        label = f" [label={_dot_quote(data['label'])}, fontsize=8]" if data.get("label") else ""
        lines.append(f"  {_dot_quote(a)} -- {_dot_quote(b)}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


_MERMAID_SHAPES = {"switch": ('["', '"]'), "router": ('(["', '"])'), "gateway-router": ('{{"', '"}}'),
                   "vm": ('[/"', '"/]'), "provider": ('(("', '"))')}


def to_mermaid(graph: nx.Graph) -> str:
    """Mermaid ``flowchart`` text (renders in GitHub/GitLab Markdown)."""
    ids = {node: f"n{i}" for i, node in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for node, data in graph.nodes(data=True):
        opening, closing = _MERMAID_SHAPES[data["kind"]]
        label = data["label"].replace("\\n", "<br/>").replace('"', "#quot;")
        lines.append(f"  {ids[node]}{opening}{label}{closing}")
    for a, b, data in graph.edges(data=True):
        label = data.get("label", "").replace('"', "#quot;")
        arrow = f' ---|"{label}"| ' if label else " --- "
        lines.append(f"  {ids[a]}{arrow}{ids[b]}")
    return "\n".join(lines) + "\n"
