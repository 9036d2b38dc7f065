"""Workloads: Einsum cascades with named rank sizes."""
from simlib.workload.cascade import Cascade, PassAnalysis
from simlib.workload.einsum import Einsum, parse_einsum
from simlib.workload.workload import BoundWorkload, Workload, load_workload, workload_names

__all__ = ["BoundWorkload", "Cascade", "Einsum", "PassAnalysis", "Workload", "load_workload", "parse_einsum",
           "workload_names"]
