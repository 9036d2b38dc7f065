"""Design-space sweeps: a spec of axes over a workload and hardware list, evaluated in chunks (see run.py)."""
