"""The Python API: ``simlib.predict("gemm", hardware="a100", M=8192, N=8192, K=8192)``."""
from __future__ import annotations

from simlib.engine.prediction import Prediction
from simlib.engine.roofline import predict_cascade
from simlib.hardware.catalog import load_hardware
from simlib.hardware.schema import HardwareSpec
from simlib.workload.workload import Workload, load_workload


def predict(workload: str | Workload, hardware: str | HardwareSpec, sustained: bool = False,
            **parameters) -> Prediction:
    """Predict a cascade workload on a device; adds ``speedup`` when the workload names a baseline.

    The baseline runs with the parameters it shares with the workload; speedup = baseline time / time.
    """
    wl = load_workload(workload)
    hw = load_hardware(hardware)
    result = predict_cascade(wl.bind(parameters), hw, sustained)
    if wl.spec.baseline is not None:
        base_wl = wl.baseline_workload
        shared = {k: v for k, v in result.parameters.items() if k in base_wl.spec.parameters}
        if wl.spec.baseline.execution:
            shared["execution"] = wl.spec.baseline.execution
        base = predict_cascade(base_wl.bind(shared), hw, sustained)
        result.speedup = base.time_s / result.time_s
        result.baseline = {"workload": base.workload, "execution": base.execution, "time_s": base.time_s}
    return result
