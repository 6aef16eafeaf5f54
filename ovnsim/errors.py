"""The exceptions ovnsim raises at its API edges.

A caller catches at the level it cares about (as with networkx): every error
ovnsim raises on bad user input is an :class:`OvnsimError`; an error in a
topology (file or builder) is a :class:`TopologyError`, which is also a
``ValueError`` so plain ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class OvnsimError(Exception):
    """Base class of every error ovnsim raises on bad input."""


class TopologyError(OvnsimError, ValueError):
    """A topology is malformed or inconsistent.

    ``source`` names the file (or ``"<builder>"`` for topologies built in
    code), ``path`` the place inside it in dotted form (e.g.
    ``routers.r1.interfaces[1]``) and ``problem`` what is wrong.  ``str()``
    gives the one-line message the CLI prints.
    """

    def __init__(self, problem: str, path: str = "", source: str = "<builder>"):
        self.problem = problem
        self.path = path
        self.source = source
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.problem}"

    def __str__(self) -> str:
        return self.message


class NotSupportedError(TopologyError):
    """The topology uses a feature ovnsim does not model (yet)."""


class MicroflowError(OvnsimError, ValueError):
    """A microflow (ovn-trace syntax) could not be parsed or refers to an unknown port."""


class EngineError(OvnsimError, ValueError):
    """The data-path engine cannot be used: not built, unknown name, or a topology it cannot hold."""
