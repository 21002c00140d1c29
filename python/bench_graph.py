"""The graph layer's workload in SciPy: the reference of `cargo xtask bench graph`.

The same workload as crates/mpcl-graph/benches/graph.rs (same sizes and degree, not the same
random numbers): each of N nodes draws 10 neighbours uniformly with replacement, an entry of
weight 1 per draw (duplicates summed), A + Aᵀ, Ā = D^-1/2 A D^-1/2 in CSR.

- spmm_N: Ā·F for F [N, 32] in float32 (Ā in float32, int32 indices);
- step_N: F + η(ĀF − F(FᵀF)) in float32, η = 0.01;
- eigen_N: eigsh(Ā, k=16, which="LA", tol=1e-6) in float64, with the residual check
  max ‖Āv − λv‖ printed alongside.

Prints one JSON object per case: case, median seconds, repeats, nnz (stored entries of Ā),
and for eigen_N the largest residual. Run with --threads 1 for one core per call.
"""

import argparse
import json
import os
import statistics
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--case", action="append", required=True, help="e.g. spmm_1e5")
    args = parser.parse_args()
    # BLAS threads (F(FᵀF), ARPACK's dense steps) are fixed before numpy loads.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import scipy
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh

    graphs = {}

    def abar(n):
        if n not in graphs:
            rng = np.random.default_rng(n)
            rows = np.repeat(np.arange(n, dtype=np.int64), 10)
            cols = rng.integers(0, n, size=n * 10)
            a = sp.csr_matrix((np.ones(n * 10), (rows, cols)), shape=(n, n))
            a = (a + a.T).tocsr()
            s = 1.0 / np.sqrt(np.asarray(a.sum(axis=1)).ravel())
            graphs[n] = (sp.diags(s) @ a @ sp.diags(s)).tocsr()
            graphs[n].sort_indices()
        return graphs[n]

    def median_time(work, repeats):
        work()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    print(f"scipy {scipy.__version__}, numpy {np.__version__}", file=sys.stderr)
    for case in args.case:
        what, size = case.split("_")
        n = int(float(size))
        g = abar(n)
        out = {"case": case, "nnz": int(g.nnz)}
        if what in ("spmm", "step"):
            g32 = g.astype(np.float32)
            # Uniform in [−1, 1)/√n as in the Rust bench: FᵀF ≈ I/3, the step stays
            # bounded.
            f = (np.random.default_rng(1).random((n, 32), dtype=np.float32) * 2 - 1) / np.sqrt(n)
            f = f.astype(np.float32)
            repeats = 20 if n <= 100_000 else 5
            if what == "spmm":
                seconds = median_time(lambda: g32 @ f, repeats)
            else:
                state = {"f": f}

                def step():
                    x = state["f"]
                    state["f"] = x + np.float32(0.01) * (g32 @ x - x @ (x.T @ x))

                seconds = median_time(step, repeats)
        elif what == "eigen":
            repeats = 3 if n <= 10_000 else 1
            result = {}

            def solve():
                result["pair"] = eigsh(g, k=16, which="LA", tol=1e-6)

            seconds = median_time(solve, repeats)
            values, vectors = result["pair"]
            residual = np.linalg.norm(g @ vectors - vectors * values, axis=0).max()
            out["residual"] = float(residual)
            out["values"] = [float(values.max()), float(values.min())]
        else:
            parser.error(f"unknown case {case!r}")
        out.update(seconds=seconds, repeats=repeats)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
