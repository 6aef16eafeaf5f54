"""The HTML matrix: self-contained, and rendered by a real browser (headless chromium)."""

import re
import shutil
import subprocess

import pytest

from ovnsim.reach.html import format_html
from ovnsim.reach.matrix import compute_matrix

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    m = compute_matrix("topologies/multi-router.yaml")
    path = tmp_path_factory.mktemp("html") / "matrix.html"
    path.write_text(format_html(m))
    return m, path


def test_self_contained(page):
    _, path = page
    text = path.read_text()
    # nothing fetched: no external scripts, styles, images or fonts
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text and "url(" not in text
    assert "reply-not-un-nated" in text and "lr_in_ip_routing" in text  # the evidence is in the page


def _chromium(profile, *args, timeout=120):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_renders_in_headless_chromium(page, tmp_path):
    m, path = page
    profile = tmp_path / "profile"
    dom = _chromium(profile, "--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the script ran: one clickable cell per asked question, each with its answer as a tooltip
    tags = [t for t in re.findall(r"<td [^>]*>", dom.stdout) if 'style="background: rgb(' in t]
    cells = [re.search(r'title="([^"]*)"', t).group(1) for t in tags]
    assert len(cells) == len(m)
    assert any("forward no-route at neutron-r-lab lr_in_ip_routing" in c for c in cells)
    assert any(c.startswith("web1 -&gt; outside icmp: reachable (seen as 203.0.113.100)") for c in cells)
    for group in ("dmz", "app", "data", "lab", "floating IPs", "outside"):
        assert f">{group}</th>" in dom.stdout
    shot = tmp_path / "matrix.png"
    result = _chromium(profile, f"--screenshot={shot}", "--window-size=1000,900", path.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_large_matrix_is_drawn_per_network_block():
    m = compute_matrix("topologies/large.yaml", ["icmp"], sources=["p1-n01-vm01", "p3-n02-vm05"])
    import ovnsim.reach.html as h
    old = h.CELL_LIMIT
    h.CELL_LIMIT = 100
    try:
        text = h.format_html(m)
    finally:
        h.CELL_LIMIT = old
    assert '"blocks": true' in text
    assert "p1-net01 -> p1-net01 icmp: 19 of 19 pairs reachable" in text
