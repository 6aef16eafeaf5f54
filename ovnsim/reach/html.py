"""The matrix as one self-contained HTML page: a heat map per protocol, grouped by network.

No network fetches: the styles, the data (JSON) and the script are inline.
Rows (senders) and columns (receivers) are grouped by network; a cell's
colour is its verdict (green: reachable both ways; one colour per blocking
disposition); hovering shows the question and its answer, a click pins the
details (the path for a small matrix, else the verdict; the blocking stage
and datapath) in the panel under the legend.  A matrix with more cells than
:data:`CELL_LIMIT` is drawn per network block (the share of reachable pairs).
"""

from __future__ import annotations

import html
import json
from collections import OrderedDict
from typing import Dict, List

from ovnsim.reach.matrix import REACHABLE, SELF, Matrix

#: Above this many cells per protocol, the map shows network blocks, not single pairs.
CELL_LIMIT = 40_000
#: Up to this many cells in all, each cell's path is traced (through the per-question API).
PATH_LIMIT = 600

_PALETTE = ["#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
            "#1f77b4", "#aa4400", "#660066", "#004466"]
_OK = "#2ca02c"


def _groups(m: Matrix, endpoints) -> "OrderedDict[str, List[int]]":
    groups: "OrderedDict[str, List[int]]" = OrderedDict()
    for i, ep in enumerate(endpoints):
        name = "outside" if ep.kind == "outside" else ("floating IPs" if ep.kind == "fip" else m.network_of(ep))
        groups.setdefault(name, []).append(i)
    return groups


def format_html(m: Matrix) -> str:
    """The whole page, as a string."""
    rows, cols = _groups(m, m.sources), _groups(m, m.dests)
    row_order = [i for g in rows.values() for i in g]
    col_order = [j for g in cols.values() for j in g]
    colours: Dict[str, str] = {}
    per_cell = len(m.sources) * len(m.dests) <= CELL_LIMIT
    trace_paths = len(m) <= PATH_LIMIT
    maps = []
    for p, proto in enumerate(m.protos):
        if per_cell:
            grid = []
            for s in row_order:
                line = []
                for d in col_order:
                    st = int(m.status[p, s, d])
                    if st == SELF:
                        line.append(None)
                        continue
                    cell = m.cell(p, s, d)
                    key = "reachable" if st == REACHABLE else f"{cell.direction} {cell.disposition}"
                    colours.setdefault(key, _OK if st == REACHABLE else _PALETTE[len(colours) % len(_PALETTE)])
                    info = f"{cell.src} -> {cell.dst} {cell.proto}: {cell.describe()}"
                    if trace_paths:
                        answer = m.explain(p, s, d)
                        info += "\nforward: " + " -> ".join(answer.path("forward") or ["-"])
                        if answer.reply is not None:
                            info += "\nreturn: " + " -> ".join(answer.path("return") or ["-"])
                        for nat in answer.nat():
                            info += f"\nNAT: {nat}"
                        if answer.blocker and answer.blocker.rule:
                            r = answer.blocker.rule
                            info += f"\nrule: {r.stage} priority {r.priority}: match ({r.match}) action ({r.action})"
                    line.append([key, info])
                grid.append(line)
            maps.append({"proto": str(proto), "rows": [m.sources[i].label for i in row_order],
                         "cols": [m.dests[j].label for j in col_order], "grid": grid})
        else:
            grid = []
            for rname, rs in rows.items():
                line = []
                for cname, cs in cols.items():
                    block = m.status[p][rs][:, cs]
                    asked = int((block != SELF).sum())
                    ok = int((block == REACHABLE).sum())
                    line.append([ok / asked if asked else None,
                                 f"{rname} -> {cname} {proto}: {ok} of {asked} pairs reachable"])
                grid.append(line)
            maps.append({"proto": str(proto), "rows": list(rows), "cols": list(cols), "grid": grid, "blocks": True})
    data = {"topology": m.reach.topology.name, "maps": maps, "colours": colours,
            "row_groups": [[name, len(ix)] for name, ix in rows.items()],
            "col_groups": [[name, len(ix)] for name, ix in cols.items()], "per_cell": per_cell}
    payload = json.dumps(data).replace("</", "<\\/")
    title = html.escape(f"ovnsim reachability: {m.reach.topology.name}")
    return _PAGE.replace("__TITLE__", title).replace("__DATA__", payload)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font:13px sans-serif;margin:16px;color:#222}
h1{font-size:18px} h2{font-size:15px;margin:18px 0 6px}
table.map{border-collapse:collapse}
table.map td{width:14px;height:14px;border:1px solid #fff;padding:0;cursor:pointer}
table.map td.self{background:#eee;cursor:default}
table.map th{font-weight:normal;font-size:11px;text-align:right;padding-right:4px;white-space:nowrap}
table.map th.group{font-weight:bold;text-align:left;border-bottom:1px solid #999;border-left:1px solid #999;overflow:hidden;max-width:1px}
table.map th.col{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;height:auto}
table.map td.sel{outline:2px solid #000}
#legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
#details{white-space:pre-wrap;font-family:monospace;background:#f6f6f6;border:1px solid #ccc;padding:8px;min-height:3em;max-width:100em}
</style></head>
<body>
<h1>__TITLE__</h1>
<p>Rows send, columns receive; a cell is one question (request delivered and the reply back through the same NAT state).
Hover for the answer, click to pin it below.</p>
<div id="legend"></div>
<div id="details">Click a cell.</div>
<div id="maps"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
(function(){
  var data = JSON.parse(document.getElementById('data').textContent);
  var legend = document.getElementById('legend');
  var details = document.getElementById('details');
  function swatch(colour, text){
    var s = document.createElement('span'); s.style.background = colour;
    legend.appendChild(s); legend.appendChild(document.createTextNode(text));
  }
  if (data.per_cell) {
    Object.keys(data.colours).forEach(function(k){ swatch(data.colours[k], k); });
  } else {
    swatch('rgb(44,160,44)', 'all pairs reachable'); swatch('rgb(214,39,40)', 'none reachable');
  }
  swatch('#eee', 'the port itself');
  function blockColour(f){
    var r = Math.round(214 + (44 - 214) * f), g = Math.round(39 + (160 - 39) * f), b = Math.round(40 + (44 - 40) * f);
    return 'rgb(' + r + ',' + g + ',' + b + ')';
  }
  var selected = null;
  data.maps.forEach(function(map){
    var h = document.createElement('h2'); h.textContent = map.proto; document.getElementById('maps').appendChild(h);
    var t = document.createElement('table'); t.className = 'map';
    if (!map.blocks) {
      var groups = document.createElement('tr'); groups.appendChild(document.createElement('th'));
      data.col_groups.forEach(function(g){
        var th = document.createElement('th'); th.className = 'group'; th.colSpan = g[1]; th.textContent = g[0];
        th.title = g[0]; groups.appendChild(th);
      });
      t.appendChild(groups);
    }
    var head = document.createElement('tr'); head.appendChild(document.createElement('th'));
    map.cols.forEach(function(c){ var th = document.createElement('th'); th.className = 'col'; th.textContent = c; head.appendChild(th); });
    t.appendChild(head);
    var groupRows = {}, start = 0;
    if (!map.blocks) data.row_groups.forEach(function(g){ groupRows[start] = g[0]; start += g[1]; });
    map.grid.forEach(function(line, i){
      if (groupRows[i] !== undefined) {
        var gr = document.createElement('tr'), gh = document.createElement('th');
        gh.className = 'group'; gh.colSpan = map.cols.length + 1; gh.textContent = groupRows[i]; gr.appendChild(gh); t.appendChild(gr);
      }
      var tr = document.createElement('tr'); var th = document.createElement('th'); th.textContent = map.rows[i]; tr.appendChild(th);
      line.forEach(function(cell){
        var td = document.createElement('td');
        if (cell === null || cell[0] === null) { td.className = 'self'; }
        else {
          td.style.background = map.blocks ? blockColour(cell[0]) : data.colours[cell[0]];
          td.title = cell[1];
          td.addEventListener('click', function(){
            if (selected) selected.classList.remove('sel');
            selected = td; td.classList.add('sel'); details.textContent = cell[1];
          });
        }
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    document.getElementById('maps').appendChild(t);
  });
})();
</script>
</body></html>
"""
