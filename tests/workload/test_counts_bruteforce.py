"""Operation counts and tensor sizes of the attention cascades against brute force.

The reference is an independent, plain-loop implementation of each attention algorithm over scalars that count
every arithmetic operation they take part in (accumulators start from the identity, 0 or -inf, as Timeloop
counts). It also checks its own result against numpy softmax attention, so the counted program is the right one.
Tolerance: exact equality of integer counts.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from simlib.workload import load_workload


class Counter(dict):
    def bump(self, kind, n=1):
        self[kind] = self.get(kind, 0) + n


class Num:
    """A float that records each operation into a shared Counter."""

    def __init__(self, value, counter):
        self.v, self.c = float(value), counter

    def _other(self, other):
        return other.v if isinstance(other, Num) else float(other)

    def __add__(self, other):
        self.c.bump("add")
        return Num(self.v + self._other(other), self.c)

    def __sub__(self, other):
        self.c.bump("add")
        return Num(self.v - self._other(other), self.c)

    def __mul__(self, other):
        self.c.bump("mul")
        return Num(self.v * self._other(other), self.c)

    def __truediv__(self, other):
        self.c.bump("div")
        return Num(self.v / self._other(other), self.c)

    def max(self, other):
        self.c.bump("max")
        return Num(max(self.v, self._other(other)), self.c)

    def exp(self):
        self.c.bump("exp")
        return Num(math.exp(self.v), self.c)

    def mac(self, a, b):
        """acc + a*b as one multiply-accumulate."""
        self.c.bump("mac")
        return Num(self.v + a.v * b.v, self.c)


def _inputs(M, P, E, F, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((E, P)), rng.standard_normal((E, M)), rng.standard_normal((F, M))


def _reference(q, k, v):
    s = q.T @ k
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)) @ v.T


def three_pass(M, P, E, F, seed=0):
    c = Counter()
    q, k, v = _inputs(M, P, E, F, seed)
    out = np.zeros((P, F))
    for p in range(P):
        qk = []
        for m in range(M):
            acc = Num(0, c)
            for e in range(E):
                acc = acc.mac(Num(q[e, p], c), Num(k[e, m], c))
            qk.append(acc)
        gm = Num(-math.inf, c)
        for m in range(M):                      # pass 1 ends with the max
            gm = gm.max(qk[m])
        sn = [(qk[m] - gm).exp() for m in range(M)]
        sd = Num(0, c)
        for m in range(M):                      # pass 2 ends with the sum
            sd = sd + sn[m]
        a = [sn[m] / sd for m in range(M)]      # pass 3
        for f in range(F):
            acc = Num(0, c)
            for m in range(M):
                acc = acc.mac(a[m], Num(v[f, m], c))
            out[p, f] = acc.v
    np.testing.assert_allclose(out, _reference(q, k, v), rtol=1e-9, atol=1e-12)
    return c


def _block_scores(c, q, k, p, block, E):
    """Scores of query p against one block of keys, and the block's maximum."""
    bqk = []
    for m in block:
        acc = Num(0, c)
        for e in range(E):
            acc = acc.mac(Num(q[e, p], c), Num(k[e, m], c))
        bqk.append(acc)
    lm = Num(-math.inf, c)
    for x in bqk:
        lm = lm.max(x)
    return bqk, lm


def _block_numerators(c, v, bqk, shift, block, F):
    """exp(score - shift) per key, their sum, and their V-weighted sums per output column."""
    sln = [(x - shift).exp() for x in bqk]
    sld = Num(0, c)
    for x in sln:
        sld = sld + x
    slnv = []
    for f in range(F):
        acc = Num(0, c)
        for x, m in zip(sln, block):
            acc = acc.mac(x, Num(v[f, m], c))
        slnv.append(acc)
    return sld, slnv


def one_pass(M, P, E, F, M0, seed=0):
    """FlashAttention-2 style loop over blocks of M0 keys with a running max, denominator and numerator."""
    c = Counter()
    q, k, v = _inputs(M, P, E, F, seed)
    out = np.zeros((P, F))
    for p in range(P):
        rm, rd = Num(-math.inf, c), Num(0, c)
        rnv = [Num(0, c) for _ in range(F)]
        for m1 in range(M // M0):
            block = range(m1 * M0, (m1 + 1) * M0)
            bqk, lm = _block_scores(c, q, k, p, block, E)
            new_rm = rm.max(lm)
            sld, slnv = _block_numerators(c, v, bqk, new_rm, block, F)
            prm = (rm - new_rm).exp()
            rd = sld + rd * prm
            rnv = [slnv[f] + rnv[f] * prm for f in range(F)]
            rm = new_rm
        for f in range(F):
            out[p, f] = (rnv[f] / rd).v
    np.testing.assert_allclose(out, _reference(q, k, v), rtol=1e-9, atol=1e-12)
    return c


def two_pass(M, P, E, F, M0, seed=0):
    """Partitioned softmax: local max/numerator/denominator per block, global max, then a correction pass."""
    c = Counter()
    q, k, v = _inputs(M, P, E, F, seed)
    out = np.zeros((P, F))
    for p in range(P):
        lms, slds, slnvs = [], [], []
        for m1 in range(M // M0):
            block = range(m1 * M0, (m1 + 1) * M0)
            bqk, lm = _block_scores(c, q, k, p, block, E)
            sld, slnv = _block_numerators(c, v, bqk, lm, block, F)
            lms.append(lm), slds.append(sld), slnvs.append(slnv)
        gm = Num(-math.inf, c)
        for lm in lms:
            gm = gm.max(lm)
        sd = Num(0, c)
        snv = [Num(0, c) for _ in range(F)]
        for lm, sld, slnv in zip(lms, slds, slnvs):
            prm = (lm - gm).exp()
            sd = sd + sld * prm
            snv = [snv[f] + slnv[f] * prm for f in range(F)]
        for f in range(F):
            out[p, f] = (snv[f] / sd).v
    np.testing.assert_allclose(out, _reference(q, k, v), rtol=1e-9, atol=1e-12)
    return c


def model_counts(name, **params):
    bound = load_workload(name).bind(params)
    total = Counter()
    for i, einsum in enumerate(bound.cascade.einsums):
        for kind, n in bound.operation_counts(i).items():
            if n:
                total.bump(kind, n)
    return total


sizes = st.integers(min_value=1, max_value=4)


@settings(max_examples=25, deadline=None)
@given(M=sizes, P=sizes, E=sizes, F=sizes)
def test_three_pass_counts_match_brute_force(M, P, E, F):
    expected = three_pass(M, P, E, F)
    assert model_counts("attention-3pass", seq_kv=M, seq_q=P, head_dim=E, head_dim_v=F) == expected


@pytest.mark.parametrize("name, reference", [("attention-1pass", one_pass), ("attention-2pass", two_pass)])
@settings(max_examples=25, deadline=None)
@given(M1=sizes, M0=sizes, P=sizes, E=sizes, F=sizes)
def test_partitioned_cascades_match_brute_force(name, reference, M1, M0, P, E, F):
    expected = reference(M1 * M0, P, E, F, M0)
    got = model_counts(name, seq_kv=M1 * M0, block_kv=M0, seq_q=P, head_dim=E, head_dim_v=F)
    assert got == expected


@settings(max_examples=25, deadline=None)
@given(B=sizes, H=sizes, M=sizes, P=sizes, E=sizes)
def test_batch_and_heads_multiply_every_count_and_size(B, H, M, P, E):
    one = load_workload("attention-3pass").bind(dict(seq_kv=M, seq_q=P, head_dim=E, head_dim_v=E))
    many = load_workload("attention-3pass").bind(dict(seq_kv=M, seq_q=P, head_dim=E, head_dim_v=E,
                                                      batch=B, heads=H))
    for i in range(len(one.cascade.einsums)):
        assert many.operation_counts(i) == {k: v * B * H for k, v in one.operation_counts(i).items()}
    # tensor sizes: Q is E x P elements per (batch, head), 2 bytes each in bf16
    assert many.tensors["Q"].bytes == B * H * E * P * 2
    assert many.tensors["QK"].elements == B * H * M * P


def test_recurrence_tensors_hold_one_more_slot_than_partitions():
    # RM[m1+1,p] for m1 < M1 plus RM[0,p]: M1 + 1 rows of P values each
    bound = load_workload("attention-1pass").bind(dict(seq_kv=1024, block_kv=256, seq_q=8))
    assert bound.tensors["RM"].elements == (1024 // 256 + 1) * 8
    assert bound.tensors["BK"].elements == bound.tensors["K"].elements
