"""Generated files for a design point: dpu_conf.vh, Vivado Tcl, deployment scripts (Jinja2 templates in tcl/)."""
