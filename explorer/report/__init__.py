"""Reports of a study: data first (pareto_info, pure), then Plotly figures, then one self-contained HTML."""
