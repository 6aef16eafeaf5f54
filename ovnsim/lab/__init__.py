"""Real network-namespace labs of a topology (``ovnsim lab ...``).

The NB model (:class:`~ovnsim.nb.model.LogicalTopology`) is realised as
Linux objects built with pyroute2: a namespace per VM port, logical router
and external network's upstream, a bridge per logical switch (all bridges in
one lab namespace), nftables for NAT and port security.  Nothing lives in
the host's own namespace.  See ``docs/lab.md``.
"""

from ovnsim.lab.lab import Capture, Lab, all_status, cleanup
from ovnsim.lab.plan import LabError, LabPlan, LabUnavailableError, plan_lab

__all__ = ["Lab", "Capture", "LabError", "LabUnavailableError", "LabPlan", "plan_lab", "cleanup", "all_status"]
