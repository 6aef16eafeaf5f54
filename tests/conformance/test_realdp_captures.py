"""Every bundled capture replayed through ovnsim and real OVN's data path (``ovnsim compare``).

The frames whose per-port outputs differ must be exactly those listed in
``known_differences.CAPTURES`` (with their kind): a new difference fails, and
so does a listed one that the engine has fixed (remove it from the list).
"""

from __future__ import annotations

import pathlib

import pytest

from conformance.known_differences import CAPTURES, KINDS
from ovnsim.testing.compare import compare_capture
from ovnsim.testing.realdp import RealDatapath

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUNDLED = sorted(p.name for p in (ROOT / "pcaps").iterdir() if p.suffix in (".pcap", ".pcapng"))


def _topology(capture: str) -> str:
    stem = capture.split(".")[0]
    for suffix in ("-mixed", "-cut", "-snaplen"):
        stem = stem.replace(suffix, "")
    return str(ROOT / "topologies" / f"{stem}.yaml")


def test_every_bundled_capture_is_listed():
    assert set(BUNDLED) == set(CAPTURES)
    assert all(kind in KINDS for frames in CAPTURES.values() for kind in frames.values())


@pytest.mark.parametrize("capture", BUNDLED)
def test_capture_outputs_match_real_ovn(capture):
    RealDatapath.skip_unless_available()
    report = compare_capture(_topology(capture), str(ROOT / "pcaps" / capture))
    assert report.frames > 5
    assert {d.number for d in report.diffs} == set(CAPTURES[capture]), report.text
