"""Hardware descriptions: schema, catalog."""
from simlib.hardware.schema import ComputeUnit, HardwareSpec, MemoryLevel
from simlib.hardware.catalog import hardware_names, load_hardware

__all__ = ["ComputeUnit", "HardwareSpec", "MemoryLevel", "hardware_names", "load_hardware"]
