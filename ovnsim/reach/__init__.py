"""Reachability: questions (``reach``), the all-pairs matrix, diffs between topology versions.

::

    from ovnsim.reach import reach
    answer = reach("topologies/reference.yaml", "vm1", "db1", "tcp/22")
    assert answer, answer.explain()
    reach("topologies/reference.yaml", "vm1", "outside", "icmp").seen_as   # '172.24.4.10' (SNAT)
"""

from ovnsim.reach.endpoints import Endpoint, Protocol, ReachError, parse_proto
from ovnsim.reach.question import Answer, Blocker, Reachability, reach

__all__ = ["reach", "Answer", "Blocker", "Reachability", "Endpoint", "Protocol", "ReachError", "parse_proto"]
