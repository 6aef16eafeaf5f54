"""Conformance reporting: the share of real-data-path conversation steps that are identical."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    """One line after the run: identical steps / steps of the conversations that ran."""
    import sys

    counts = next((m.STEP_COUNTS for name, m in list(sys.modules.items())
                   if name.endswith("test_realdp_conversations") and hasattr(m, "STEP_COUNTS")), None)
    if counts and counts[0]:
        steps, same = counts
        terminalreporter.write_line(
            f"real data path conversations: {same} of {steps} steps identical "
            f"({100.0 * same / steps:.1f} %)")
