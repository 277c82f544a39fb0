"""What the DPU can run (operator support) for a DPU configuration."""
