"""The networkx graph of a logical topology and its dot and Mermaid drawings.

The reference topology (``topologies/reference.yaml``) is checked node by node;
every example topology is checked against its compiled model: a switch and a
router are linked exactly when a router-type switch port names one of the
router's ports, a VM hangs off the switch that holds its port, a localnet port
leads to its provider network. The drawings are parsed back (a small DOT
tokenizer, Mermaid line by line) and must carry every node and label.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Dict, List, Set, Tuple

import networkx as nx
import pytest

from ovnsim.neutron.compiler import compile_topology
from ovnsim.nb.graph import FORMATS, logical_graph, to_dot, to_mermaid
from ovnsim.neutron.loader import load_topology
from ovnsim.nb.model import LSP_TYPE_LOCALNET, LSP_TYPE_ROUTER, LogicalTopology

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))
REFERENCE = ROOT / "topologies" / "reference.yaml"

KINDS = {"switch", "router", "gateway-router", "vm", "provider"}


@functools.lru_cache(maxsize=None)
def logical(path: Path) -> LogicalTopology:
    return compile_topology(load_topology(str(path)))


@functools.lru_cache(maxsize=None)
def graph_of(path: Path) -> nx.Graph:
    return logical_graph(logical(path))


def topo_id(path: Path) -> str:
    return path.stem


# --------------------------------------------------------------------------
# the reference topology, spelled out
# --------------------------------------------------------------------------


def test_reference_nodes_and_kinds():
    graph = graph_of(REFERENCE)
    assert {node: data["kind"] for node, data in graph.nodes(data=True)} == {
        "ls:neutron-public": "switch",
        "ls:neutron-web": "switch",
        "ls:neutron-db": "switch",
        "ls:join-router1": "switch",
        "lr:neutron-router1": "router",
        "lr:gr-router1": "gateway-router",
        "vm:vm1": "vm",
        "vm:vm2": "vm",
        "vm:db1": "vm",
        "net:physnet1": "provider",
    }


def test_reference_edges():
    graph = graph_of(REFERENCE)
    edges = {frozenset(e): data["label"] for *e, data in graph.edges(data=True)}
    assert edges == {
        # router ports peered with router-type switch ports
        frozenset({"lr:neutron-router1", "ls:neutron-web"}): "lrp-router1-web-v4 10.0.0.1/24",
        frozenset({"lr:neutron-router1", "ls:neutron-db"}): "lrp-router1-db-v4 10.0.1.1/24",
        frozenset({"lr:neutron-router1", "ls:join-router1"}): "lrp-router1-join 100.64.0.1/29",
        frozenset({"lr:gr-router1", "ls:join-router1"}): "lrp-gr-router1-join 100.64.0.2/29",
        frozenset({"lr:gr-router1", "ls:neutron-public"}): "lrp-router1-gw 172.24.4.10/24",
        # the localnet port to the provider network
        frozenset({"ls:neutron-public", "net:physnet1"}): "provnet-public",
        # VMs on their switches
        frozenset({"ls:neutron-web", "vm:vm1"}): "",
        frozenset({"ls:neutron-web", "vm:vm2"}): "",
        frozenset({"ls:neutron-db", "vm:db1"}): "",
    }


def test_reference_labels():
    graph = graph_of(REFERENCE)
    assert graph.nodes["lr:gr-router1"]["label"] == "gr-router1\\nchassis hv1\\n3 NAT rules"
    assert graph.nodes["lr:neutron-router1"]["label"] == "neutron-router1"
    assert graph.nodes["vm:vm1"]["label"] == "vm1\\nfa:16:3e:00:00:11 10.0.0.11"
    assert graph.nodes["net:physnet1"]["label"] == "provider physnet1"
    assert graph.graph["name"] == str(REFERENCE)


def test_reference_is_connected():
    """Every VM reaches the provider network through the routers."""
    graph = graph_of(REFERENCE)
    assert nx.is_connected(graph)
    path = nx.shortest_path(graph, "vm:db1", "net:physnet1")
    assert path == ["vm:db1", "ls:neutron-db", "lr:neutron-router1", "ls:join-router1",
                    "lr:gr-router1", "ls:neutron-public", "net:physnet1"]


# --------------------------------------------------------------------------
# every example topology, against its compiled model
# --------------------------------------------------------------------------


def expected_links(model: LogicalTopology) -> Set[frozenset]:
    """Switch-router links from the router-port peering of the model."""
    owner = {lrp.name: lr.name for lr in model.routers for lrp in lr.ports}
    return {frozenset({f"ls:{ls.name}", f"lr:{owner[p.options['router-port']]}"})
            for ls in model.switches for p in ls.ports if p.type == LSP_TYPE_ROUTER}


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=topo_id)
def test_switch_router_edges_follow_peering(topo):
    model, graph = logical(topo), graph_of(topo)
    actual = {frozenset({a, b}) for a, b in graph.edges
              if {a.split(":")[0], b.split(":")[0]} == {"ls", "lr"}}
    assert actual == expected_links(model)
    # no switch-switch or router-router edges: a router port always lands on a switch
    for a, b in graph.edges:
        assert a.split(":")[0] != b.split(":")[0], (a, b)


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=topo_id)
def test_nodes_match_the_model(topo):
    model, graph = logical(topo), graph_of(topo)
    vms = {p.name: ls.name for ls in model.switches for p in ls.ports
           if p.type not in (LSP_TYPE_ROUTER, LSP_TYPE_LOCALNET)}
    physnets = {p.options["network_name"]: ls.name for ls in model.switches for p in ls.ports
                if p.type == LSP_TYPE_LOCALNET}
    expected = ({f"ls:{ls.name}" for ls in model.switches} | {f"lr:{lr.name}" for lr in model.routers}
                | {f"vm:{name}" for name in vms} | {f"net:{net}" for net in physnets})
    assert set(graph.nodes) == expected
    for node, data in graph.nodes(data=True):
        assert data["kind"] in KINDS and data["label"], node
    for lr in model.routers:
        assert graph.nodes[f"lr:{lr.name}"]["kind"] == ("gateway-router" if lr.is_gateway_router else "router")
    # a VM has one link, to the switch that holds its port
    for name, switch in vms.items():
        assert list(graph.neighbors(f"vm:{name}")) == [f"ls:{switch}"]
    # a provider network is reached through the switch with the localnet port
    for net, switch in physnets.items():
        assert f"ls:{switch}" in set(graph.neighbors(f"net:{net}"))


def test_distributed_gateway_port_edge_is_marked():
    graph = graph_of(ROOT / "topologies" / "dgp.yaml")
    label = graph.edges["ls:neutron-public", "lr:neutron-router1"]["label"]
    assert label.startswith("lrp-router1-gw ") and label.endswith(" (gateway)")


# --------------------------------------------------------------------------
# dot
# --------------------------------------------------------------------------

_DOT_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>--|->|[{}\[\];,=])|(?P<id>[A-Za-z_0-9.]+))',
                        re.S)


def dot_tokens(text: str) -> List[Tuple[str, str]]:
    """(kind, value) tokens of DOT text; quoted strings unquoted per the DOT grammar (only \\" is an escape)."""
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _DOT_TOKEN.match(text, pos)
        assert m and m.end() > pos, f"cannot tokenize DOT at {text[pos:pos + 40]!r}"
        pos = m.end()
        if m["str"] is not None:
            tokens.append(("id", m["str"][1:-1].replace('\\"', '"')))
        else:
            tokens.append(("op", m["op"]) if m["op"] else ("id", m["id"]))
    return tokens


def parse_dot(text: str) -> Tuple[str, Dict[str, Dict[str, str]], List[Tuple[str, str, Dict[str, str]]]]:
    """An undirected ``graph NAME { ... }``: its name, node attributes and edges."""
    tokens = dot_tokens(text)
    assert tokens[0] == ("id", "graph"), "an undirected graph (edges use --)"
    assert tokens[1][0] == "id" and tokens[2] == ("op", "{") and tokens[-1] == ("op", "}")
    body = tokens[3:-1]
    nodes: Dict[str, Dict[str, str]] = {}
    edges: List[Tuple[str, str, Dict[str, str]]] = []
    i = 0

    def attrs(i: int) -> Tuple[Dict[str, str], int]:
        out: Dict[str, str] = {}
        if i < len(body) and body[i] == ("op", "["):
            i += 1
            while body[i] != ("op", "]"):
                (k_kind, key), eq, (v_kind, value) = body[i:i + 3]
                assert k_kind == v_kind == "id" and eq == ("op", "="), body[i:i + 3]
                out[key] = value
                i += 3
                if body[i] == ("op", ","):
                    i += 1
            i += 1
        return out, i

    while i < len(body):
        kind, value = body[i]
        assert kind == "id", f"statement starts with {value!r}"
        if i + 1 < len(body) and body[i + 1] == ("op", "--"):
            assert body[i + 2][0] == "id"
            a, b = value, body[i + 2][1]
            data, i = attrs(i + 3)
            edges.append((a, b, data))
        else:
            data, i = attrs(i + 1)
            if value not in ("node", "edge", "graph"):
                nodes[value] = data
        assert body[i] == ("op", ";"), f"statement not ended by ';' at {body[i]}"
        i += 1
    return tokens[1][1], nodes, edges


def dot_rendered_lines(label: str) -> List[str]:
    r"""The lines Graphviz draws for a label: ``\n``, ``\l``, ``\r`` break lines, ``\X`` is X."""
    lines, current, i = [], "", 0
    while i < len(label):
        ch = label[i]
        if ch == "\\" and i + 1 < len(label):
            nxt = label[i + 1]
            if nxt in "nlr":
                lines.append(current)
                current = ""
            else:
                current += nxt
            i += 2
        else:
            current += ch
            i += 1
    return lines + [current]


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=topo_id)
def test_dot_declares_every_node_and_edge(topo):
    graph = graph_of(topo)
    name, nodes, edges = parse_dot(to_dot(graph))
    assert name == str(topo)
    assert set(nodes) == set(graph.nodes)
    for a, b, _ in edges:
        assert a in nodes and b in nodes
    assert {frozenset({a, b}) for a, b, _ in edges} == {frozenset(e) for e in graph.edges}
    assert len(edges) == graph.number_of_edges()
    for node, data in nodes.items():
        assert "label" in data and data.get("shape"), node


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=topo_id)
def test_dot_contains_every_label(topo):
    """Each line of each node and edge label is in the drawing's label for it."""
    graph = graph_of(topo)
    _, nodes, edges = parse_dot(to_dot(graph))
    for node, data in graph.nodes(data=True):
        for line in data["label"].split("\\n"):
            assert line in nodes[node]["label"], (node, line)
    drawn = {frozenset({a, b}): attrs.get("label", "") for a, b, attrs in edges}
    for a, b, data in graph.edges(data=True):
        assert drawn[frozenset({a, b})] == data["label"]


def test_dot_multiline_labels_render_as_lines():
    graph = graph_of(REFERENCE)
    _, nodes, _ = parse_dot(to_dot(graph))
    multiline = [n for n, d in graph.nodes(data=True) if "\\n" in d["label"]]
    assert multiline
    for node in multiline:
        assert dot_rendered_lines(nodes[node]["label"]) == graph.nodes[node]["label"].split("\\n"), node


def test_dot_rendering_helper():
    """The helper behind the multi-line label test reads Graphviz escapes as Graphviz does."""
    assert dot_rendered_lines("a\\nb") == ["a", "b"]
    assert dot_rendered_lines("a\\\\nb") == ["a\\nb"]
    assert dot_rendered_lines("plain") == ["plain"]


# --------------------------------------------------------------------------
# mermaid
# --------------------------------------------------------------------------

_MERMAID_NODE = re.compile(r'^  (?P<id>n\d+)(?P<open>\["|\(\["|\{\{"|\[/"|\(\(")(?P<label>.*?)(?P<close>"\]|"\]\)|"\}\}|"/\]|"\)\))$')
_MERMAID_LINK = re.compile(r'^  (?P<a>n\d+) (?:---|---\|"(?P<label>[^"]*)"\|) (?P<b>n\d+)$')
_MERMAID_SHAPES = {"switch": '["', "router": '(["', "gateway-router": '{{"', "vm": '[/"', "provider": '(("'}


def parse_mermaid(text: str) -> Tuple[Dict[str, Tuple[str, str]], List[Tuple[str, str, str]]]:
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes: Dict[str, Tuple[str, str]] = {}
    links: List[Tuple[str, str, str]] = []
    for line in lines[1:]:
        node, link = _MERMAID_NODE.match(line), _MERMAID_LINK.match(line)
        assert node or link, f"not a Mermaid node or link: {line!r}"
        if link:
            links.append((link["a"], link["b"], link["label"] or ""))
        else:
            assert node["id"] not in nodes, f"{node['id']} declared twice"
            nodes[node["id"]] = (node["open"], node["label"])
    return nodes, links


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=topo_id)
def test_mermaid_contains_every_node_and_label(topo):
    graph = graph_of(topo)
    text = to_mermaid(graph)
    nodes, links = parse_mermaid(text)
    assert len(nodes) == graph.number_of_nodes()
    by_label = {label: shape for shape, label in nodes.values()}
    for node, data in graph.nodes(data=True):
        label = data["label"].replace("\\n", "<br/>").replace('"', "#quot;")
        assert label in by_label, node
        assert by_label[label] == _MERMAID_SHAPES[data["kind"]], node
    for a, b, _ in links:
        assert a in nodes and b in nodes
    assert sorted(label for *_, label in links) == sorted(d["label"] for *_, d in graph.edges(data=True))
    # the link structure is the graph's (mermaid ids map one-to-one to labels)
    ident = {nid: label for nid, (_, label) in nodes.items()}
    label_of = {n: d["label"].replace("\\n", "<br/>") for n, d in graph.nodes(data=True)}
    assert {frozenset({ident[a], ident[b]}) for a, b, _ in links} == {
        frozenset({label_of[a], label_of[b]}) for a, b in graph.edges}


def test_every_format_is_offered_by_the_cli_and_renders(tmp_path, capsys):
    """Each of FORMATS is a ``graph --format`` choice and draws every logical switch and router."""
    from ovnsim.cli import main

    topo = Path(__file__).resolve().parents[1] / "topologies" / "reference.yaml"
    logical = compile_topology(load_topology(str(topo)))
    for fmt in FORMATS:
        assert main(["graph", str(topo), "--format", fmt]) == 0
        text = capsys.readouterr().out
        for name in [s.name for s in logical.switches] + [r.name for r in logical.routers]:
            assert name in text, (fmt, name)
    with pytest.raises(SystemExit) as err:  # a format FORMATS does not list is refused
        main(["graph", str(topo), "--format", "svg"])
    assert err.value.code == 2
