"""Hardware knowledge: devices, boards, DPU IP tables, configuration rules, resources, fingerprints."""
