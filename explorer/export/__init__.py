"""`explore export` and the measurements fed back from it.

- `design`: the block design of a design point as data (cells, CONFIG values, nets, AXI links, addresses);
- `templates`: Jinja2 rendering of tcl/ and deploy/ with Tcl and shell quoting filters;
- `writer`: writes the export folder (Vivado scripts or Vitis files, arch.json, deployment files, README);
- `model`: the model cut at the split, and picking a study trial;
- `parsers` and `measure`: Vivado reports and board results, recorded next to the estimates.
"""
