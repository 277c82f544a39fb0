"""dpu-explorer: hardware/software co-design space exploration for the Zynq DPU (DPUCZDX8G)."""

__version__ = "0.1.0"
