"""simlib: performance simulator and analytical models for attention."""
from simlib.api import predict
from simlib.engine import EinsumCost, Prediction
from simlib.errors import SimlibInputError
from simlib.hardware import HardwareSpec, hardware_names, load_hardware
from simlib.workload import load_workload, parse_einsum, workload_names

__all__ = ["EinsumCost", "HardwareSpec", "Prediction", "SimlibInputError", "hardware_names", "load_hardware",
           "load_workload", "parse_einsum", "predict", "workload_names"]
__version__ = "0.1.0"
