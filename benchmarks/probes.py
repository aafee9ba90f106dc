"""Probe solvers vs scikit-learn: the paper's full protocol, timed on one machine.

    python -m benchmarks.probes            # the two paper-sized problems (slow: sklearn)
    python -m benchmarks.probes --quick    # small problems, about a minute

For each problem and solver this runs, on the same synthetic CNN-like features:

- ours: :func:`probes.linear.protocol.run_protocol` -- the whole path on train (45 lambdas for
  logistic regression, 26 Cs for the SVM), pick on val, refit on train+val, score test;
- scikit-learn: the same protocol by hand. Logistic: ``LogisticRegression(solver="lbfgs",
  warm_start=True)`` stepping ``C = 1 / (2 lambda)`` through the same grid from the
  strongest regularisation down (each fit warm-started from the previous one), then a
  warm-started refit on train+val. SVM: ``LinearSVC(loss="squared_hinge")`` on the
  L2-normalised features for every C of the grid (liblinear has no warm start), then the
  refit. Both with ``max_iter=1000`` (``--sklearn-max-iter``) and default ``tol``; fits
  that stop at ``max_iter`` are counted in the ``sk_maxit`` column.

and prints ``problem, solver, ours_s, sklearn_s, speedup, ours_acc, sklearn_acc`` (test
top-1) plus the chosen hyperparameters and ``sk_acc@ours``, scikit-learn's test top-1 when
refit at *our* chosen value (untimed): on a flat validation curve two correct solvers may
pick neighbouring values, and this column separates that from solver accuracy. The full
run takes about 40 minutes on a 2-core CPU, almost all of it LinearSVC on the first
problem (``--solvers logreg`` skips the SVM; ``--ours-only`` skips scikit-learn). Differences
to keep in mind: LinearSVC penalises
its intercept (``intercept_scaling=1``), our SVM does not; the selection rule is the same
(best val top-1, ties to the strongest regularisation).

A second table puts our path at the cost of its GEMMs (issue 14): each L-BFGS iteration
needs two matrix products over the rotated train features (``F @ D`` and ``F.T @ R``,
``F`` of ``n_train x r`` with ``r = min(D, n_train - 1)``), so ``iterations x`` their
measured cost (best of a few timed repeats, on the faster of 1 and the configured thread
count, as the solver's tuner would pick) is the floor a path could reach; ``path/gemm`` is
how far above that floor the whole path (basis, rotation, line search, val scoring,
bookkeeping) runs. For the SVM (one-vs-rest) converged columns drop out of the GEMMs, so
its floor is overstated and its ratio understated. ``--repeat N`` reports the fastest of N
runs of our protocol.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from probes.linear.logistic import DEFAULT_LAMBDAS
from probes.linear.protocol import ProtocolResult, run_protocol
from probes.linear.svm import DEFAULT_CS


@dataclass(frozen=True)
class Problem:
    """Sizes: ``n`` = train + val (80/20), plus ``n_test`` test rows."""

    n: int
    d: int
    c: int
    n_test: int
    noise: float = 3.0

    @property
    def name(self) -> str:
        return f"N={self.n} D={self.d} C={self.c}"


PROBLEMS = [Problem(10_000, 1280, 100, 5000), Problem(2000, 2048, 102, 3000)]
QUICK = [Problem(2000, 256, 20, 1000), Problem(600, 512, 12, 600)]


def make_cnn_features(
    n: int, d: int, c: int, seed: int = 0, noise: float = 3.0, latent: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Features that look like a CNN's penultimate layer.

    Class prototypes in a ``latent``-dimensional space plus within-class noise, mapped to
    ``d`` dimensions by a random projection, plus isotropic noise, shifted down and passed
    through a ReLU (about half the entries are exactly 0), then scaled per channel (Gamma
    distributed scales, as channels of real networks differ in scale). The covariance has a
    strong low-dimensional part and a long tail, like real features; ``noise`` sets how
    hard the classes are (3.0 gives roughly 70% top-1 for N=10,000, C=100).
    """
    rng = np.random.default_rng(seed)
    proto = rng.normal(0.0, 1.0, (c, latent)).astype(np.float32)
    proj = rng.normal(0.0, 1.0 / np.sqrt(latent), (latent, d)).astype(np.float32)
    scale = rng.gamma(2.0, 0.5, d).astype(np.float32)
    y = rng.permutation(np.arange(n) % c)
    h = proto[y] + noise * rng.normal(0.0, 1.0, (n, latent)).astype(np.float32)
    x = h @ proj + 0.3 * rng.normal(0.0, 1.0, (n, d)).astype(np.float32) - 0.5
    return (np.maximum(x, 0.0) * scale).astype(np.float32), y


def splits(p: Problem, seed: int = 0) -> tuple[np.ndarray, ...]:
    x, y = make_cnn_features(p.n + p.n_test, p.d, p.c, seed=seed, noise=p.noise)
    n_tr = int(0.8 * p.n)
    return x[:n_tr], y[:n_tr], x[n_tr:p.n], y[n_tr:p.n], x[p.n:], y[p.n:]


def _l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def sklearn_protocol(solver: str, data: tuple[np.ndarray, ...], max_iter: int,
                     also_at: float | None = None) -> tuple[float, float, float, int, float]:
    """The protocol with scikit-learn. Returns (seconds, test top-1, chosen parameter,
    fits that hit max_iter, test top-1 when refit at ``also_at`` instead).

    The last value (not timed) separates solver accuracy from selection: two correct
    solvers can pick different neighbours on a flat validation curve.
    """
    xtr, ytr, xva, yva, xte, yte = data
    t0 = time.perf_counter()
    model: Callable[[float], object]
    if solver == "logreg":
        grid = np.sort(DEFAULT_LAMBDAS)[::-1]  # strongest regularisation first
        clf = LogisticRegression(solver="lbfgs", warm_start=True, max_iter=max_iter)

        def model(lam: float) -> object:
            clf.set_params(C=1.0 / (2.0 * lam))
            return clf
    else:
        grid = np.sort(DEFAULT_CS)  # smallest C (strongest regularisation) first
        xtr, xva, xte = _l2n(xtr), _l2n(xva), _l2n(xte)

        def model(c: float) -> object:
            return LinearSVC(C=c, loss="squared_hinge", max_iter=max_iter)

    xtv, ytv = np.concatenate([xtr, xva]), np.concatenate([ytr, yva])
    best, best_val, best_p, at = None, -1.0, float("nan"), None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        for p in grid:
            m = model(p).fit(xtr, ytr)
            v = float(np.mean(m.predict(xva) == yva))
            if v > best_val:
                best, best_val, best_p = copy.deepcopy(m), v, float(p)
            if also_at is not None and np.isclose(p, also_at):
                at = copy.deepcopy(m)
        assert best is not None
        acc = float(np.mean(best.fit(xtv, ytv).predict(xte) == yte))
        seconds = time.perf_counter() - t0
        hits = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        acc_at = float("nan")
        if at is not None:
            acc_at = float(np.mean(at.fit(xtv, ytv).predict(xte) == yte))
    return seconds, acc, best_p, hits, acc_at


def gemm_cost(n: int, r: int, c: int, reps: int = 5) -> float:
    """Seconds for one L-BFGS iteration's two GEMMs, ``F @ D`` and ``F.T @ R`` in float32
    (``F [n, r]``, ``D [r + 1, c]``, ``R [n, c]``): the best of ``reps`` on the faster of
    one thread and the configured count."""
    g = torch.Generator().manual_seed(0)
    f = torch.randn(n, r, generator=g)
    d = torch.randn(r + 1, c, generator=g)
    res = torch.randn(n, c, generator=g)
    out = torch.empty(r, c)
    prev = torch.get_num_threads()
    best = float("inf")
    try:
        for threads in sorted({1, prev}):
            torch.set_num_threads(threads)
            for _ in range(reps):
                t0 = time.perf_counter()
                torch.addmm(d[-1], f, d[:-1])
                torch.mm(f.T, res, out=out)
                best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(prev)
    return best


def gemm_row(prob: Problem, solver: str, res: ProtocolResult) -> tuple[object, ...]:
    """``(problem, solver, path iterations, GEMM s, path s, total s, path / GEMM)``."""
    n_tr = int(0.8 * prob.n)
    r = min(prob.d, n_tr - 1)
    iters = sum(c["n_iter"] for c in res.curve)
    gemm_s = iters * gemm_cost(n_tr, r, prob.c)
    path_s = res.timings["path_s"]
    return (prob.name, solver, iters, gemm_s, path_s, res.timings["total_s"],
            path_s / max(gemm_s, 1e-12))


def best_of(repeat: int, solver: str, data: tuple[np.ndarray, ...], device: str
            ) -> ProtocolResult:
    """The fastest of ``repeat`` runs of our protocol (the machine may be shared)."""
    runs = [run_protocol(solver, *data, metric="top1", device=device)  # type: ignore[arg-type]
            for _ in range(max(1, repeat))]
    return min(runs, key=lambda r: r.timings["total_s"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small problems (about a minute)")
    ap.add_argument("--solvers", default="logreg,svm", help="comma list: logreg,svm")
    ap.add_argument("--sklearn-max-iter", type=int, default=1000)
    ap.add_argument("--device", default="auto", help="device for our solver")
    ap.add_argument("--ours-only", action="store_true", help="skip scikit-learn")
    ap.add_argument("--repeat", type=int, default=1, help="runs of ours; the fastest counts")
    args = ap.parse_args(argv)
    problems = QUICK if args.quick else PROBLEMS
    solvers = [s for s in args.solvers.split(",") if s]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows, gemm_rows = [], []
    for prob in problems:
        data = splits(prob)
        for solver in solvers:
            res = best_of(args.repeat, solver, data, args.device)
            gemm_rows.append(gemm_row(prob, solver, res))
            if args.ours_only:
                sk_s, sk_acc, sk_p, hits, sk_at = (float("nan"),) * 3 + (0, float("nan"))
            else:
                sk_s, sk_acc, sk_p, hits, sk_at = sklearn_protocol(
                    solver, data, args.sklearn_max_iter, also_at=res.best_param)
            ours_s = res.timings["total_s"]
            row = (prob.name, solver, ours_s, sk_s, sk_s / ours_s, res.test_metric, sk_acc,
                   sk_at, res.best_param, sk_p, hits, res.device)
            rows.append(row)
            print(f"  done {prob.name} {solver}: ours {ours_s:.1f}s (path "
                  f"{res.timings['path_s']:.1f}s, refit {res.timings['refit_s']:.1f}s, "
                  f"{sum(c['n_iter'] for c in res.curve)} path iterations) | sklearn "
                  f"{sk_s:.1f}s", flush=True)

    head = (f"{'problem':<22} {'solver':<7} {'ours_s':>8} {'sklearn_s':>10} {'speedup':>8} "
            f"{'ours_acc':>9} {'sklearn_acc':>12} {'sk_acc@ours':>12} {'ours_best':>10} "
            f"{'sk_best':>10} {'sk_maxit':>8} device")
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r[0]:<22} {r[1]:<7} {r[2]:>8.2f} {r[3]:>10.2f} {r[4]:>7.1f}x {r[5]:>9.4f} "
              f"{r[6]:>12.4f} {r[7]:>12.4f} {r[8]:>10.3g} {r[9]:>10.3g} {r[10]:>8d} {r[11]}")
    print("\nsk_acc@ours: scikit-learn's test top-1 when its protocol is refit at our chosen"
          " parameter (not timed)")
    head = (f"{'problem':<22} {'solver':<7} {'path_iters':>10} {'gemm_s':>8} {'path_s':>8} "
            f"{'total_s':>8} {'path/gemm':>9}")
    print("\nOur path at the cost of its GEMMs (iterations x measured cost of the two GEMMs)")
    print(head)
    print("-" * len(head))
    for g in gemm_rows:
        print(f"{g[0]:<22} {g[1]:<7} {g[2]:>10d} {g[3]:>8.2f} {g[4]:>8.2f} {g[5]:>8.2f} "
              f"{g[6]:>8.2f}x")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} "
          "(other processes on the machine slow both columns)")


if __name__ == "__main__":
    main()
