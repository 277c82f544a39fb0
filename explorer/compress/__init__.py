"""Compression passes: APoZ channel pruning and DPU-style power-of-two int8 quantization."""
