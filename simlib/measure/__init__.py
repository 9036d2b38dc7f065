"""Measuring the machine at hand with torch (the optional ``simlib[torch]`` extra): traces of attention and
GEMM timings, and a calibrated hardware YAML. Only the modules that run kernels import torch."""
