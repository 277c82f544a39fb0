"""Latency and throughput model: DPU per layer, Arm CPU per operator, boundaries, frames per second."""
