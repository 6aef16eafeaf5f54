"""The ovnsim pytest plugin: reachability assertions whose failure message is the evidence.

Active when ovnsim is installed (entry point ``pytest11: ovnsim``); ``-p no:ovnsim``
turns it off.  ::

    import pytest
    from ovnsim.testing import assert_reachable, assert_isolated, assert_snat, assert_fip

    pytestmark = pytest.mark.ovn_topology("topologies/reference.yaml")

    def test_web_reaches_db(ovn_topology):
        assert_reachable("vm1", "db1", proto="tcp/22")

    @pytest.mark.ovn_topology("topologies/security-groups.yaml")
    def test_db_is_not_on_the_internet(ovn_topology):
        assert_isolated("outside", "db1", proto="tcp/5432")  # its security group admits web only

    def test_vm2_leaves_as_its_floating_ip(ovn_topology):
        assert_fip("vm2", "172.24.4.100")

Fixtures:

* ``ovn_topology`` -- the test's topology (a :class:`~ovnsim.neutron.model.Topology`),
  from the nearest ``@pytest.mark.ovn_topology("path.yaml")``, else
  ``--ovn-topology PATH``, else the ``ovn_topology`` ini option; the helpers
  below use it when not given ``net=``;
* ``ovn_sim`` -- a fresh :class:`~ovnsim.sim.Simulator` of it per test, that
  records what leaves each port (for :func:`assert_packets`).

Backends (``--ovn-backend``, or the ``ovn_backend`` ini option): who answers
the assertions about the ``ovn_topology``:

* ``emulator`` (default) -- ovnsim's data path;
* ``lab`` -- a real lab of the same topology (:mod:`ovnsim.lab`, built once
  per topology file and session, torn down when the session ends): real
  ping, TCP and UDP between network namespaces (:mod:`ovnsim.reach.lab`);
* ``both`` -- each question asked of both; a test fails, with both answers,
  when they disagree.

The backend answers for ``net=PATH`` too.  With ``lab`` or ``both`` on a
machine where labs cannot run (not root, no network namespaces, no
nftables), every test asking about a topology is skipped with the reason.
``net=`` also takes a running :class:`~ovnsim.lab.Lab`, which then answers
that assertion; a lab made by the ``ovn_lab`` fixture of
``ovnsim.lab.pytest_plugin`` answers the test's assertions without ``net=``
when the test has no ``ovn_topology``.

Every helper takes ``soft=True``: the failure is collected and all of a
test's soft failures are reported together when it ends.
"""

from __future__ import annotations

import contextlib
import os
from typing import Dict, Iterable, List, Optional, Sequence, Union

import pytest

from ovnsim.reach.question import Answer, Reachability
from ovnsim.sim import Simulator

__all__ = ["assert_reachable", "assert_isolated", "assert_snat", "assert_fip", "assert_packets",
           "RecordingSimulator"]


# --------------------------------------------------------------------------
# State of the running test: its topology, simulator and soft failures
# --------------------------------------------------------------------------


BACKENDS = ("emulator", "lab", "both")


class _Current:
    reach = None  #: a Reachability, LabReachability or BothReachability
    sim: Optional["RecordingSimulator"] = None
    soft: List[str] = []
    backend: str = "emulator"  #: the session's --ovn-backend


_cache: Dict[str, Reachability] = {}
#: topology file -> the session's lab of it (backends lab and both)
_labs: Dict[str, object] = {}


def _reachability_for(path: str) -> Reachability:
    key = os.path.abspath(path)
    if key not in _cache:
        _cache[key] = Reachability(path)
    return _cache[key]


def _lab_for(path: str):
    """The session's lab of topology file ``path`` (built on first use); skips where labs cannot run."""
    from ovnsim.lab.build import check_environment
    from ovnsim.lab.lab import Lab
    from ovnsim.lab.plan import LabUnavailableError

    key = os.path.abspath(path)
    if key not in _labs:
        try:
            check_environment()
            stem = "".join(c if c.isalnum() or c in "_.-" else "-" for c in os.path.basename(key).rsplit(".", 1)[0])
            with _session_lab_dir():
                _labs[key] = Lab.up(key, name=f"pt{os.getpid()}-{stem}"[:32])
        except LabUnavailableError as err:
            pytest.skip(f"--ovn-backend needs labs: {err}")
    return _labs[key]


def _session_lab_dir():
    """Where the session's labs keep their ledgers: ``$OVNSIM_LAB_DIR`` when it is set, else a
    directory of this run's own under ``/run/ovnsim/runs`` (:mod:`ovnsim.lab.runs`), so that if
    the run is killed ``ovnsim lab cleanup`` still tears its labs down (a lab knows its ledger's
    path: ``down`` at the session's end finds it)."""
    from ovnsim.lab.runs import new_lab_dir, using_lab_dir

    if os.environ.get("OVNSIM_LAB_DIR"):
        return contextlib.nullcontext()
    return using_lab_dir(new_lab_dir("session"))


def _backend_for(path: str, backend: str):
    """What answers the assertions about topology file ``path`` with ``backend``."""
    if backend == "emulator":
        return _reachability_for(path)
    from ovnsim.reach.lab import BothReachability, LabReachability

    lab = LabReachability(_lab_for(path), topology=_reachability_for(path).topology)
    return lab if backend == "lab" else BothReachability(_reachability_for(path), lab)


def _net(net):
    if net is None:
        if _Current.reach is None:
            raise pytest.UsageError(
                "ovnsim: no topology for this assertion: use the ovn_topology fixture (with "
                "@pytest.mark.ovn_topology('file.yaml'), --ovn-topology or the ovn_topology ini option), or pass net=")
        return _Current.reach
    if isinstance(net, Reachability) or type(net).__name__ in ("LabReachability", "BothReachability"):
        return net
    if type(net).__name__ == "Lab":
        from ovnsim.reach.lab import LabReachability

        return LabReachability(net)
    if isinstance(net, RecordingSimulator):
        return Reachability(net.topology, simulator=None)
    if isinstance(net, (str, os.PathLike)):
        return _backend_for(os.fspath(net), _Current.backend)
    return Reachability(net)


def _fail(message: str, soft: bool) -> None:
    __tracebackhide__ = True
    if soft:
        _Current.soft.append(message)
        return
    pytest.fail(message, pytrace=True)


def _evidence(expected: str, answer: Answer) -> str:
    return f"expected {expected}, got:\n{answer.explain()}"


def _ask(r, src: str, dst: str, proto: str, soft: bool) -> Optional[Answer]:
    """``r.ask``; with ``--ovn-backend both``, a disagreement is a failure (None when soft)."""
    __tracebackhide__ = True
    from ovnsim.reach.lab import Disagreement

    try:
        return r.ask(src, dst, proto)
    except Disagreement as err:
        _fail(str(err), soft)
        return None


# --------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------


def assert_reachable(src: str, dst: str, proto: str = "icmp", *, net=None, soft: bool = False) -> Answer:
    """``src`` opens a ``proto`` connection to ``dst`` and the reply comes back (see :func:`ovnsim.reach.reach`)."""
    __tracebackhide__ = True
    answer = _ask(_net(net), src, dst, proto, soft)
    if answer is not None and not answer.reachable:
        _fail(_evidence(f"{src} -> {dst} {proto} reachable", answer), soft)
    return answer


def assert_isolated(src: str, dst: str, proto: Union[str, Sequence[str]] = ("icmp", "tcp/22", "udp/53"), *,
                    net=None, soft: bool = False) -> List[Answer]:
    """No ``proto`` connection (each of them, when a list) from ``src`` to ``dst`` opens."""
    __tracebackhide__ = True
    protos = [proto] if isinstance(proto, str) else list(proto)
    answers = [_ask(_net(net), src, dst, p, soft) for p in protos]
    for p, answer in zip(protos, answers):
        if answer is not None and answer.reachable:
            _fail(_evidence(f"{src} -> {dst} {p} isolated", answer), soft)
    return answers


def assert_snat(src: str, via: str, dst: str = "outside", proto: str = "tcp/443", *, net=None,
                soft: bool = False) -> Answer:
    """``src`` reaches ``dst`` (default: the outside) and is seen there as ``via`` (a SNAT address)."""
    __tracebackhide__ = True
    answer = _ask(_net(net), src, dst, proto, soft)
    if answer is not None and (not answer.reachable or answer.seen_as != via):
        _fail(_evidence(f"{src} -> {dst} {proto} reachable and seen as {via}", answer), soft)
    return answer


def assert_fip(port: str, fip: str, proto: str = "tcp/22", *, net=None, soft: bool = False) -> List[Answer]:
    """``port`` leaves as its floating IP ``fip``, and the outside reaches ``port`` through ``fip``."""
    __tracebackhide__ = True
    r = _net(net)
    out = _ask(r, port, "outside", proto, soft)
    if out is not None and (not out.reachable or out.seen_as != fip):
        _fail(_evidence(f"{port} -> outside {proto} seen as its floating IP {fip}", out), soft)
    inbound = _ask(r, "outside", fip, proto, soft)
    if inbound is not None and (not inbound.reachable
                                or inbound.delivered_port != r.directory.names.by_name.get(port, port)):
        _fail(_evidence(f"outside -> {fip} {proto} delivered to {port}", inbound), soft)
    return [out, inbound]


class RecordingSimulator(Simulator):
    """A Simulator that keeps what left each port (for :func:`assert_packets`) and knows its topology."""

    def __init__(self, topology):
        super().__init__(topology)
        self.topology = topology
        self.pending: Dict[str, List] = {}

    def inject(self, port, frame, *, trace: bool = False):
        """:meth:`Simulator.inject`, keeping every output for :func:`assert_packets`."""
        result = super().inject(port, frame, trace=trace)
        for out in result.outputs:
            self.pending.setdefault(out.port, []).append(out)
        self.last = result
        return result


def _fields(frame) -> Dict[str, object]:
    if hasattr(frame, "packet"):  # an Output
        return frame.packet.fields()
    from ovnsim.datapath._fastpath import frame_fields

    fields = frame_fields(bytes(frame))
    if fields is None:
        raise AssertionError("expected frame cannot be parsed (not an Ethernet frame ovnsim reads)")
    return fields


def assert_packets(port: str, expected, ignore: Iterable[str] = (), *, sim: Optional[RecordingSimulator] = None,
                   soft: bool = False) -> None:
    """Exactly the ``expected`` frames (one, or a list; bytes or scapy) left ``port`` since the last check.

    PTF's ``verify_packets`` + ``verify_no_other_packets`` for one port,
    deterministic: the simulator (``ovn_sim``) recorded every output; the
    header fields are compared (OVN names: ``eth.src``, ``ip4.dst``,
    ``ip.ttl``, ``tcp.dst`` ...) except those in ``ignore``.  The port's
    record is emptied.
    """
    __tracebackhide__ = True
    sim = sim if sim is not None else _Current.sim
    if sim is None:
        raise pytest.UsageError("ovnsim: assert_packets needs the ovn_sim fixture (or sim=)")
    if isinstance(expected, (bytes, bytearray)) or hasattr(expected, "build"):
        expected = [expected]
    ignore = set(ignore)
    got = sim.pending.pop(port, [])
    want = [{k: v for k, v in _fields(f).items() if k not in ignore} for f in expected]
    have = [{k: v for k, v in o.packet.fields().items() if k not in ignore} for o in got]
    if want == have:
        return
    lines = [f"port {port}: expected {len(want)} frame(s), {len(have)} left it (ignoring {sorted(ignore) or 'nothing'})"]
    for i in range(max(len(want), len(have))):
        w = want[i] if i < len(want) else None
        h = have[i] if i < len(have) else None
        if w == h:
            continue
        if w is None or h is None:
            lines.append(f"  #{i}: expected {w}, got {h}")
            continue
        diff = {k: (w.get(k), h.get(k)) for k in sorted(set(w) | set(h)) if w.get(k) != h.get(k)}
        lines.append(f"  #{i}: " + ", ".join(f"{k}: expected {a}, got {b}" for k, (a, b) in diff.items()))
    last = getattr(sim, "last", None)
    if last is not None and last.drops:
        lines.append("  last frame's drops: " + "; ".join(
            f"{d.reason.label} at {d.datapath} {d.stage}" for d in last.drops))
    _fail("\n".join(lines), soft)


# --------------------------------------------------------------------------
# pytest hooks and fixtures
# --------------------------------------------------------------------------


def pytest_addoption(parser) -> None:
    """``--ovn-topology PATH``, ``--ovn-backend emulator|lab|both`` and their ini options."""
    group = parser.getgroup("ovnsim", "ovnsim reachability assertions")
    group.addoption("--ovn-topology", metavar="PATH", default=None,
                    help="topology file for the ovn_topology fixture (a test's ovn_topology mark wins)")
    group.addoption("--ovn-backend", choices=BACKENDS, default=None,
                    help="who answers the assertions: the emulator (default), a real lab of the topology "
                         "(root), or both (a test fails where they disagree)")
    parser.addini("ovn_topology", "topology file for the ovn_topology fixture (default for --ovn-topology)",
                  default="")
    parser.addini("ovn_backend", "emulator, lab or both (default for --ovn-backend)", default="emulator")


def pytest_configure(config) -> None:
    """Declare the ``ovn_topology`` mark (so ``--strict-markers`` accepts it); check the backend."""
    config.addinivalue_line("markers", "ovn_topology(path): the topology file the ovn_topology fixture loads")
    backend = _backend_name(config)
    if backend not in BACKENDS:
        raise pytest.UsageError(f"ovnsim: ovn_backend {backend!r}: use one of {', '.join(BACKENDS)}")
    _Current.backend = backend


def _backend_name(config) -> str:
    return config.getoption("--ovn-backend", None) or config.getini("ovn_backend") or "emulator"


def pytest_sessionfinish(session) -> None:
    """Tear down the labs the ``lab`` and ``both`` backends built."""
    _Current.backend = "emulator"
    if not _labs:
        return
    from ovnsim.lab.plan import LabError

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    while _labs:
        _path, lab = _labs.popitem()
        try:
            lab.down()
        except LabError as err:  # reported, never left silently
            if reporter is not None:
                reporter.write_line(f"ovnsim: {err} (`ovnsim lab cleanup` removes it)", red=True)
            session.exitstatus = session.exitstatus or 1


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Report the test's soft failures together when it ends; forget its topology."""
    _Current.soft = []
    try:
        result = yield
    finally:
        soft, _Current.soft = _Current.soft, []
        _Current.reach, _Current.sim = None, None
    if soft:
        __tracebackhide__ = True
        raise pytest.fail.Exception(f"{len(soft)} soft assertion(s) failed:\n\n" + "\n\n".join(soft), pytrace=False)
    return result


def _topology_path(request) -> str:
    marker = request.node.get_closest_marker("ovn_topology")
    if marker is not None:
        if not marker.args:
            raise pytest.UsageError("@pytest.mark.ovn_topology needs the topology file's path")
        path = marker.args[0]
        base = os.path.dirname(str(request.node.fspath))
        return path if os.path.isabs(path) or os.path.exists(path) else os.path.join(base, path)
    path = request.config.getoption("--ovn-topology") or request.config.getini("ovn_topology")
    if not path:
        raise pytest.UsageError("ovnsim: the ovn_topology fixture needs a topology: "
                                "@pytest.mark.ovn_topology('file.yaml'), --ovn-topology PATH or the ovn_topology ini option")
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(str(request.config.rootpath), path)
    return path


@pytest.fixture
def ovn_topology(request):
    """The test's topology (loaded once per file), and the default of every ovnsim assertion.

    With ``--ovn-backend lab`` or ``both`` its lab is built on first use (or
    the test skipped, with the reason, where labs cannot run).
    """
    r = _backend_for(_topology_path(request), _backend_name(request.config))
    _Current.reach = r
    yield r.topology
    _Current.reach = None


@pytest.fixture
def ovn_sim(ovn_topology):
    """A fresh simulator of the test's topology that records what leaves each port."""
    sim = RecordingSimulator(ovn_topology)
    _Current.sim = sim
    yield sim
    _Current.sim = None
