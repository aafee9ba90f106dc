"""Probe solvers vs scikit-learn: the paper's full protocol, timed on one machine.

    python -m benchmarks.probes            # the two paper-sized problems (slow: sklearn)
    python -m benchmarks.probes --quick    # small problems, about a minute
    python -m benchmarks.probes --store /tmp/evidence/store.zarr \
        [--entries efficientnet_lite0/caltech101 ...]   # real features (see the end)

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
bookkeeping) runs. The iterations include the re-solve of the best point (see
:func:`probes.linear.estimators.fit_path`), whose restart products are not counted. For
the SVM (one-vs-rest) converged columns drop out of the GEMMs, so its floor is overstated
and its ratio understated. ``--repeat N`` reports the fastest of N runs of our protocol.

Real features (``--store URL``, instead of the synthetic problems): for each entry (``--entries
CKPT/DATASET ...``; default every complete single-label entry, metric top1 or mean_per_class)
train and val are read with ``FeatureStore.load`` (not timed), then two paths over the same 45
lambdas are timed in this process: ours, :func:`probes.linear.logistic.logistic_path` (fastest
of ``--repeat``), and :func:`sklearn_logistic_path` (the warm-started lbfgs path the synthetic
protocol uses too). Both pick the best val top-1 (whatever the entry's metric), ties to the
strongest regularisation; no refit, no test. Columns: ``n_train x D``, ``classes``, the two
times and ``speedup``; each side's chosen lambda and its val top-1 (``ours_lam``/``ours_val``,
``sk_lam``/``sk_val``); ``sk_val@ours`` (scikit-learn's val top-1 at our lambda, on its own
path) and ``ours_val@sk``, which tell a flat curve from a different one; ``sk_maxit``;
``agree``: ``same`` (lambda and best val top-1), ``same acc`` (another lambda, equal best val
top-1), else ``ours +k``/``ours -k`` val images right. Then a summary line and the GEMM table
for our paths (``path_s`` = ``total_s`` = ``ours_s``); the load average at start and end.

Why the ``@`` columns: scikit-learn's path at its default ``tol=1e-4`` is itself inexact. On
efficientnet_lite0/digits (250 val images), against tightly converged cold fits (``tol=1e-10``,
float64) at the 25 lambdas from 1.78 down to 1.78e-6, our val top-1 differed at 3 points (1
image each), scikit-learn's path at 22 (up to 2 images: it stays at 240 from lambda 0.01 down,
where the converged models get 238-239). Equal best val top-1 is the goal; one image apart is
within what the reference's own stopping rule moves.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from probes.linear.logistic import DEFAULT_LAMBDAS, logistic_path
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


#: our logistic grid in scikit-learn's traversal order: strongest regularisation first
SK_LAMBDAS: np.ndarray = np.sort(DEFAULT_LAMBDAS)[::-1]


def value_at(grid: np.ndarray, values: np.ndarray, param: float) -> float:
    """``values`` at the grid point equal to ``param`` (nan when it is not on the grid)."""
    i = np.flatnonzero(np.isclose(grid, param, rtol=1e-9, atol=0.0))
    return float(values[i[0]]) if i.size else float("nan")


@dataclass
class SkPath:
    """One scikit-learn path over a grid: the fitted model at the best val top-1 (ties to the
    first met, i.e. the strongest regularisation), its parameter, the val top-1 of every grid
    point (traversal order), the fits that stopped at ``max_iter``, the model at ``also_at``
    when asked (deep copies: the path's own estimator keeps moving) and the seconds taken."""

    best: Any
    best_param: float
    grid: np.ndarray
    val: np.ndarray
    hits: int
    at: Any | None
    seconds: float

    @property
    def best_val(self) -> float:
        return float(np.max(self.val))

    def val_at(self, param: float) -> float:
        """Val top-1 of the grid point at ``param`` (nan when it is not on the grid)."""
        return value_at(self.grid, self.val, param)


def hit_max_iter(model: Any) -> bool:
    """Whether a fitted LogisticRegression or LinearSVC stopped at its ``max_iter`` (both
    report ``n_iter_`` capped at ``max_iter``; a ConvergenceWarning also fires on other
    failures, so the warnings alone would overcount)."""
    return int(np.max(model.n_iter_)) >= int(model.max_iter)


def sklearn_path(model: Callable[[float], Any], grid: np.ndarray, xtr: np.ndarray,
                 ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray,
                 also_at: float | None = None) -> SkPath:
    """Fit ``model(p)`` on train for every ``p`` of ``grid`` in the given order and score val
    top-1; the timed part of both tables' scikit-learn columns. ``model`` may return the same
    estimator every time (``warm_start=True`` then continues from the previous fit)."""
    t0 = time.perf_counter()
    val = np.full(len(grid), np.nan)
    best, best_p, best_v, at, hits = None, float("nan"), -1.0, None, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # counted by hit_max_iter
        for i, p in enumerate(grid):
            m = model(float(p)).fit(xtr, ytr)
            val[i] = float(np.mean(m.predict(xva) == yva))
            hits += hit_max_iter(m)
            if val[i] > best_v:  # strictly better: ties stay with the stronger penalty
                best, best_p, best_v = copy.deepcopy(m), float(p), val[i]
            if also_at is not None and np.isclose(p, also_at):
                at = copy.deepcopy(m)
    assert best is not None
    return SkPath(best, best_p, np.asarray(grid, dtype=np.float64), val, hits, at,
                  time.perf_counter() - t0)


def sklearn_logistic_path(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray,
                          max_iter: int = 1000, also_at: float | None = None) -> SkPath:
    """scikit-learn's warm-started lbfgs path over our 45 lambdas, strongest first:
    ``LogisticRegression(solver="lbfgs", warm_start=True)`` stepping ``C = 1 / (2 lambda)``
    (its ``C * sum(loss) + ||W||^2 / 2`` is our ``sum(loss) + lambda ||W||^2``)."""
    clf = LogisticRegression(solver="lbfgs", warm_start=True, max_iter=max_iter)

    def model(lam: float) -> LogisticRegression:
        return clf.set_params(C=1.0 / (2.0 * lam))

    return sklearn_path(model, SK_LAMBDAS, xtr, ytr, xva, yva, also_at)


def sklearn_protocol(solver: str, data: tuple[np.ndarray, ...], max_iter: int,
                     also_at: float | None = None) -> tuple[float, float, float, int, float]:
    """The protocol with scikit-learn. Returns (seconds, test top-1, chosen parameter,
    fits that hit max_iter, test top-1 when refit at ``also_at`` instead).

    The last value (not timed) separates solver accuracy from selection: two correct
    solvers can pick different neighbours on a flat validation curve.
    """
    xtr, ytr, xva, yva, xte, yte = data
    if solver == "logreg":
        path = sklearn_logistic_path(xtr, ytr, xva, yva, max_iter, also_at)
    else:
        xtr, xva, xte = _l2n(xtr), _l2n(xva), _l2n(xte)

        def svc(c: float) -> LinearSVC:  # liblinear has no warm start
            return LinearSVC(C=c, loss="squared_hinge", max_iter=max_iter)

        # smallest C (strongest regularisation) first
        path = sklearn_path(svc, np.sort(DEFAULT_CS), xtr, ytr, xva, yva, also_at)
    xtv, ytv = np.concatenate([xtr, xva]), np.concatenate([ytr, yva])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        refit = path.best.fit(xtv, ytv)  # warm-started from the best path point (logreg)
        acc = float(np.mean(refit.predict(xte) == yte))
        seconds = path.seconds + time.perf_counter() - t0
        hits = path.hits + hit_max_iter(refit)
        acc_at = float("nan")
        if path.at is not None:
            acc_at = float(np.mean(path.at.fit(xtv, ytv).predict(xte) == yte))
    return seconds, acc, path.best_param, hits, acc_at


def gemm_cost(n: int, r: int, c: int, reps: int = 10) -> float:
    """Seconds for one L-BFGS iteration's two GEMMs, ``F @ D`` and ``F.T @ R`` in float32
    (``F [n, r]``, ``D [r + 1, c]``, ``R [n, c]``): the best of ``reps`` on the faster of
    one thread and the configured count. Ten repeats: on this shared machine five once all
    fell in a slow spell and doubled the floor (a path/gemm of 1.33x that was not real)."""
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


def path_gemm_row(name: str, solver: str, n_train: int, d: int, n_out: int, iters: int,
                  path_s: float, total_s: float) -> tuple[object, ...]:
    """``(name, solver, path iterations, GEMM s, path s, total s, path / GEMM)``: the GEMM
    floor is ``iters`` x the measured cost of one iteration's two products over the rotated
    train features (rank ``min(d, n_train - 1)``, ``n_out`` score columns)."""
    gemm_s = iters * gemm_cost(n_train, min(d, n_train - 1), n_out)
    return (name, solver, iters, gemm_s, path_s, total_s, path_s / max(gemm_s, 1e-12))


def gemm_row(prob: Problem, solver: str, res: ProtocolResult) -> tuple[object, ...]:
    """:func:`path_gemm_row` of one synthetic problem's protocol run."""
    return path_gemm_row(prob.name, solver, int(0.8 * prob.n), prob.d, prob.c,
                         sum(c["n_iter"] for c in res.curve), res.timings["path_s"],
                         res.timings["total_s"])


def print_table(head: str, lines: list[str]) -> None:
    """One of the benchmark's tables: the header, a rule as wide, then the rows."""
    print(head)
    print("-" * len(head))
    for line in lines:
        print(line)


def print_gemm_table(rows: list[tuple[object, ...]], width: int = 22) -> None:
    """The ``path/gemm`` table of :func:`path_gemm_row` rows."""
    head = (f"{'problem':<{width}} {'solver':<7} {'path_iters':>10} {'gemm_s':>8} "
            f"{'path_s':>8} {'total_s':>8} {'path/gemm':>9}")
    print("\nOur path at the cost of its GEMMs (iterations x measured cost of the two GEMMs)")
    print_table(head, [f"{g[0]:<{width}} {g[1]:<7} {g[2]:>10d} {g[3]:>8.2f} {g[4]:>8.2f} "
                       f"{g[5]:>8.2f} {g[6]:>8.2f}x" for g in rows])


def best_of(repeat: int, solver: str, data: tuple[np.ndarray, ...], device: str
            ) -> ProtocolResult:
    """The fastest of ``repeat`` runs of our protocol (the machine may be shared)."""
    runs = [run_protocol(solver, *data, metric="top1", device=device)  # type: ignore[arg-type]
            for _ in range(max(1, repeat))]
    return min(runs, key=lambda r: r.timings["total_s"])


#: metrics of single-label entries (one class per image): the ones the logistic path and
#: scikit-learn's LogisticRegression solve alike; multi-label entries (VOC mAP) are left out
SINGLE_LABEL_METRICS = ("top1", "mean_per_class")


def store_entries(fs: Any, wanted: list[str] | None = None) -> list[tuple[str, str]]:
    """``(ckpt, dataset)`` of the entries to compare: ``wanted`` (``"ckpt/dataset"`` each) or,
    by default, every complete single-label entry. A ``ValueError`` names a wanted entry that
    is missing, incomplete or multi-label."""
    single = {}
    for e in fs.entries():
        ds = e.provenance.get("dataset", {})
        single[f"{e.ckpt}/{e.dataset}"] = (not ds.get("multilabel", False)
                                           and ds.get("metric", "top1") in SINGLE_LABEL_METRICS)
    names = [k for k, ok in single.items() if ok] if wanted is None else wanted
    for name in names:
        if name not in single:
            raise ValueError(f"no complete entry {name!r} in {fs.url} "
                             f"(has: {', '.join(single) or 'none'})")
        if not single[name]:
            raise ValueError(f"entry {name!r} is multi-label; the comparison is single-label")
    return [(n.split("/", 1)[0], n.split("/", 1)[1]) for n in names]


@dataclass(frozen=True)
class EntryRow:
    """Our logistic path vs scikit-learn's warm-started path on one entry's train/val."""

    entry: str
    n_train: int
    d: int
    classes: int
    n_val: int
    ours_s: float
    sklearn_s: float
    ours_lam: float
    ours_val: float
    sk_lam: float
    sk_val: float
    sk_val_at_ours: float  # scikit-learn's val top-1 at our chosen lambda (its own path)
    ours_val_at_sk: float  # ours at scikit-learn's chosen lambda
    sk_maxit: int
    iters: int
    device: str

    @property
    def agree(self) -> str:
        """``same`` (lambda and best val top-1), ``same acc`` (another lambda of the same val
        top-1: a flat curve), else ``ours +k`` / ``ours -k`` val images right vs scikit-learn."""
        if np.isnan(self.sk_val):
            return "-"
        k = round(self.ours_val * self.n_val) - round(self.sk_val * self.n_val)
        if k:
            return f"ours {k:+d}"
        return "same" if np.isclose(self.ours_lam, self.sk_lam) else "same acc"


def compare_entry(fs: Any, ckpt: str, dataset: str, device: str = "auto",
                  max_iter: int = 1000, repeat: int = 1, ours_only: bool = False) -> EntryRow:
    """Time our :func:`~probes.linear.logistic.logistic_path` (the default 45 lambdas,
    fastest of ``repeat``) and :func:`sklearn_logistic_path` on the entry's train/val, in
    this process one after the other; both pick the best val top-1, ties to the strongest
    regularisation. Loading the features is not timed."""
    xtr, ytr = fs.load(ckpt, dataset, "train")
    xva, yva = fs.load(ckpt, dataset, "val")
    best_s, ours = float("inf"), None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        res = logistic_path(xtr, ytr, xva, yva, metric="top1", device=device)
        seconds = time.perf_counter() - t0
        if seconds < best_s:
            best_s, ours = seconds, res
    assert ours is not None
    nan = float("nan")
    sk = None if ours_only else sklearn_logistic_path(xtr, ytr, xva, yva, max_iter,
                                                      also_at=ours.best_param)
    classes = int(np.unique(ytr).size)
    return EntryRow(
        entry=f"{ckpt}/{dataset}", n_train=xtr.shape[0], d=xtr.shape[1], classes=classes,
        n_val=xva.shape[0], ours_s=best_s, sklearn_s=nan if sk is None else sk.seconds,
        ours_lam=ours.best_param, ours_val=float(ours.val_metric[ours.best_index]),
        sk_lam=nan if sk is None else sk.best_param, sk_val=nan if sk is None else sk.best_val,
        sk_val_at_ours=nan if sk is None else sk.val_at(ours.best_param),
        ours_val_at_sk=nan if sk is None else value_at(ours.params, ours.val_metric,
                                                         sk.best_param),
        sk_maxit=0 if sk is None else sk.hits, iters=int(ours.n_iter.sum()),
        device=str(ours.estimator.device_))


def run_store(fs: Any, entries: list[tuple[str, str]], device: str, max_iter: int,
              repeat: int, ours_only: bool) -> list[EntryRow]:
    """The real-feature table: :func:`compare_entry` for each ``(ckpt, dataset)`` of
    ``entries`` in the store ``fs``, then the GEMM table of our paths."""
    rows = []
    for ckpt, dataset in entries:
        r = compare_entry(fs, ckpt, dataset, device, max_iter, repeat, ours_only)
        rows.append(r)
        print(f"  done {r.entry}: ours {r.ours_s:.1f}s ({r.iters} iterations) | sklearn "
              f"{r.sklearn_s:.1f}s", flush=True)
    w = max([len(r.entry) for r in rows] + [5])
    head = (f"{'entry':<{w}} {'n_train x D':>12} {'classes':>7} {'ours_s':>8} {'sklearn_s':>9} "
            f"{'speedup':>8} {'ours_lam':>9} {'ours_val':>8} {'sk_lam':>9} {'sk_val':>8} "
            f"{'sk_val@ours':>11} {'ours_val@sk':>11} {'sk_maxit':>8} {'agree':>9} device")
    print()
    print_table(head, [
        f"{r.entry:<{w}} {f'{r.n_train} x {r.d}':>12} {r.classes:>7d} {r.ours_s:>8.2f} "
        f"{r.sklearn_s:>9.2f} {r.sklearn_s / r.ours_s:>7.1f}x {r.ours_lam:>9.3g} "
        f"{100 * r.ours_val:>7.2f}% {r.sk_lam:>9.3g} {100 * r.sk_val:>7.2f}% "
        f"{100 * r.sk_val_at_ours:>10.2f}% {100 * r.ours_val_at_sk:>10.2f}% "
        f"{r.sk_maxit:>8d} {r.agree:>9} {r.device}" for r in rows])
    same = sum(r.agree.startswith("same") for r in rows)
    print(f"\nbest val top-1 agrees on {same} of {len(rows)} entries "
          f"({sum(r.agree == 'same' for r in rows)} at the same lambda)")
    print_gemm_table([path_gemm_row(r.entry, "logreg", r.n_train, r.d,
                                    1 if r.classes == 2 else r.classes, r.iters, r.ours_s,
                                    r.ours_s) for r in rows], width=w)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small problems (about a minute)")
    ap.add_argument("--solvers", default="logreg,svm", help="comma list: logreg,svm")
    ap.add_argument("--sklearn-max-iter", type=int, default=1000)
    ap.add_argument("--device", default="auto", help="device for our solver")
    ap.add_argument("--ours-only", action="store_true", help="skip scikit-learn")
    ap.add_argument("--repeat", type=int, default=1, help="runs of ours; the fastest counts")
    ap.add_argument("--store", metavar="URL",
                    help="compare on the real entries of this feature store instead")
    ap.add_argument("--entries", nargs="+", metavar="CKPT/DATASET",
                    help="with --store: these entries (default: every complete single-label one)")
    args = ap.parse_args(argv)
    if args.entries and not args.store:
        ap.error("--entries needs --store")
    problems = QUICK if args.quick else PROBLEMS
    solvers = [s for s in args.solvers.split(",") if s]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.store:
        from featurestore.errors import FeatureStoreError
        from featurestore.store import FeatureStore

        try:
            fs = FeatureStore(args.store, read_only=True, create=False)
            entries = store_entries(fs, args.entries)
        except (FeatureStoreError, ValueError) as e:
            ap.error(str(e))
        run_store(fs, entries, args.device, args.sklearn_max_iter, args.repeat, args.ours_only)
        print(f"\nload average at the end {os.getloadavg()[0]:.1f} "
              "(other processes on the machine slow both columns)")
        return
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
    print_table(head, [
        f"{r[0]:<22} {r[1]:<7} {r[2]:>8.2f} {r[3]:>10.2f} {r[4]:>7.1f}x {r[5]:>9.4f} "
        f"{r[6]:>12.4f} {r[7]:>12.4f} {r[8]:>10.3g} {r[9]:>10.3g} {r[10]:>8d} {r[11]}"
        for r in rows])
    print("\nsk_acc@ours: scikit-learn's test top-1 when its protocol is refit at our chosen"
          " parameter (not timed)")
    print_gemm_table(gemm_rows)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} "
          "(other processes on the machine slow both columns)")


if __name__ == "__main__":
    main()
