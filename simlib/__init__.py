"""simlib: performance simulator and analytical models for attention."""
from simlib.api import predict
from simlib.engine import EinsumCost, Prediction
from simlib.errors import SimlibInputError
from simlib.hardware import HardwareSpec, hardware_names, load_hardware
from simlib.workload import load_workload, parse_einsum, workload_names


def sweep(spec, out=None, processes: int = 0, scheduler: str | None = None):
    """Evaluate a sweep spec (a dict or a YAML path) and return a pandas DataFrame; see simlib.sweeps."""
    from simlib.sweeps.run import run_sweep
    return run_sweep(spec, out=out, processes=processes, scheduler=scheduler)


__all__ = ["EinsumCost", "HardwareSpec", "Prediction", "SimlibInputError", "hardware_names", "load_hardware",
           "load_workload", "parse_einsum", "predict", "sweep", "workload_names"]
__version__ = "0.1.0"
