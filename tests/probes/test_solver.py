"""The probe solver core, tested directly: basis, losses, L-BFGS, thread policy.

References are independent: scipy's L-BFGS-B on the same objective written in NumPy, torch
autograd for the loss derivatives, plain linear algebra for the rotation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp

from probes.linear.basis import make_basis
from probes.linear.lbfgs import LBFGSMemory, solve, two_loop
from probes.linear.losses import MultinomialLoss, SigmoidLoss, SquaredHingeLoss
from probes.linear.problem import make_problem, zero_objective
from probes.linear.threads import GemmTuner, Threads, configured_threads, cpu_serial

F64 = torch.float64


def data(n: int, d: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative, unevenly scaled features (like a CNN's) and labels that depend on them."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(0.3, 1.0, (n, d)), 0) * rng.gamma(2.0, 0.5, d)
    y = (x @ rng.normal(0, 1, (d, c))).argmax(1)
    return x, y


def onehot(y: np.ndarray, c: int) -> np.ndarray:
    return np.eye(c)[y]


# --------------------------------------------------------------------------------------
# L-BFGS against scipy on strictly convex problems
# --------------------------------------------------------------------------------------


def softmax_objective(v: np.ndarray, x: np.ndarray, y1h: np.ndarray, alpha: float
                      ) -> tuple[float, np.ndarray]:
    """Mean cross-entropy + alpha/2 ||W||^2 (bias unpenalised) and its gradient; ``v`` holds
    ``[W; b]`` flattened, shape ``(D + 1) x C``."""
    n, d = x.shape
    theta = v.reshape(d + 1, -1)
    z = x @ theta[:-1] + theta[-1]
    lse = logsumexp(z, axis=1)
    p = np.exp(z - lse[:, None])
    f = (lse - (z * y1h).sum(1)).mean() + 0.5 * alpha * (theta[:-1] ** 2).sum()
    r = (p - y1h) / n
    g = np.vstack([x.T @ r + alpha * theta[:-1], r.sum(0)])
    return float(f), g.ravel()


def sq_hinge_objective(v: np.ndarray, x: np.ndarray, ypm: np.ndarray, alpha: float
                       ) -> tuple[float, np.ndarray]:
    """Sum over columns of mean squared hinge + alpha/2 ||w_k||^2, and its gradient."""
    n, d = x.shape
    theta = v.reshape(d + 1, -1)
    z = x @ theta[:-1] + theta[-1]
    m = np.maximum(1 - ypm * z, 0)
    f = (m**2).mean(0).sum() + 0.5 * alpha * (theta[:-1] ** 2).sum()
    r = -2 * ypm * m / n
    g = np.vstack([x.T @ r + alpha * theta[:-1], r.sum(0)])
    return float(f), g.ravel()


def our_solution(x: np.ndarray, loss_of, alpha: float, c: int) -> tuple[np.ndarray, object]:
    xt = torch.as_tensor(x, dtype=F64)
    basis = make_basis(xt)
    loss = loss_of()
    prob = make_problem(basis, loss, torch.zeros(basis.feats.shape[1] + 1, c, dtype=F64))
    f_floor = 1e-2 * zero_objective(basis, loss, c)
    info = solve(prob, LBFGSMemory(), alpha, 1e-13, f_floor, max_iter=2000, ftol=1e-15)
    coef, b = basis.to_original(prob.theta)
    return np.vstack([coef.numpy(), b.numpy()[None]]), info


@pytest.mark.parametrize(("n", "d"), [(300, 12), (40, 60)])  # N > D (full) and N <= D (span)
def test_lbfgs_softmax_matches_scipy(n: int, d: int) -> None:
    c, alpha = 4, 0.05
    x, y = data(n, d, c)
    y1h = onehot(y, c)
    ours, info = our_solution(x, lambda: MultinomialLoss(torch.as_tensor(y1h)), alpha, c)
    ref = minimize(softmax_objective, np.zeros((d + 1) * c), args=(x, y1h, alpha), jac=True,
                   method="L-BFGS-B", options={"maxiter": 20_000, "gtol": 1e-12, "ftol": 0})
    f_ours, g_ours = softmax_objective(ours.ravel(), x, y1h, alpha)
    assert info.converged
    assert f_ours == pytest.approx(ref.fun, rel=1e-9)
    assert np.abs(g_ours).max() < 1e-6
    # softmax is shift invariant per row of W only through the bias; W itself is unique
    # (strictly convex in W), the bias up to a common constant
    w_ours, w_ref = ours[:-1], ref.x.reshape(d + 1, c)[:-1]
    np.testing.assert_allclose(w_ours, w_ref, atol=2e-5 * np.abs(w_ref).max())
    b_ours, b_ref = ours[-1], ref.x.reshape(d + 1, c)[-1]
    np.testing.assert_allclose(b_ours - b_ours.mean(), b_ref - b_ref.mean(), atol=1e-4)
    assert info.objective == pytest.approx(f_ours, rel=1e-9)


def test_lbfgs_columnwise_squared_hinge_matches_scipy() -> None:
    n, d, c, alpha = 200, 10, 3, 0.02
    x, y = data(n, d, c, seed=1)
    ypm = 2 * onehot(y, c) - 1
    ours, info = our_solution(x, lambda: SquaredHingeLoss(torch.as_tensor(ypm)), alpha, c)
    ref = minimize(sq_hinge_objective, np.zeros((d + 1) * c), args=(x, ypm, alpha), jac=True,
                   method="L-BFGS-B", options={"maxiter": 20_000, "gtol": 1e-12, "ftol": 0})
    assert info.converged
    assert sq_hinge_objective(ours.ravel(), x, ypm, alpha)[0] == pytest.approx(ref.fun, rel=1e-9)
    np.testing.assert_allclose(ours, ref.x.reshape(d + 1, c), atol=1e-5)


def test_path_warm_start_reaches_the_cold_optimum() -> None:
    """Kept memory + warm start across alphas (the path) ends where a cold solve ends."""
    n, d, c = 300, 12, 4
    x, y = data(n, d, c, seed=2)
    y1h = torch.as_tensor(onehot(y, c))
    basis = make_basis(torch.as_tensor(x, dtype=F64))
    loss = MultinomialLoss(y1h)
    prob = make_problem(basis, loss, torch.zeros(d + 1, c, dtype=F64))
    memory = LBFGSMemory()
    for alpha in (10.0, 1.0, 0.1, 0.01):
        solve(prob, memory, alpha, 1e-13, 1e-3, max_iter=2000, ftol=1e-15)
    cold, _ = our_solution(x, lambda: MultinomialLoss(y1h), 0.01, c)
    coef, b = basis.to_original(prob.theta)
    np.testing.assert_allclose(coef.numpy(), cold[:-1], atol=1e-5 * np.abs(cold).max())


def test_two_loop_with_empty_memory_is_the_preconditioner() -> None:
    g = torch.randn(5, 3, dtype=F64)
    scale = torch.rand(5, 3, dtype=F64) + 0.5
    out = two_loop(g, LBFGSMemory(), lambda q: q / scale, lambda q: (q * q / scale).sum())
    torch.testing.assert_close(out, g / scale)


def textbook_two_loop(g: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor]],
                      scale: torch.Tensor, columnwise: bool) -> torch.Tensor:
    """Nocedal & Wright's Algorithm 7.4, one pair at a time, with H0 = gamma / scale; a pair
    with s.y <= 0 is skipped (per column when column-wise) and gamma = s.y / y.H0.y comes
    from the newest pair that is not."""
    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(0) if columnwise else (a * b).sum().reshape(1)

    def rho(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        sy = dot(s, y)
        return torch.where(sy > 0, 1 / sy, torch.zeros_like(sy))

    q, coefs = g.clone(), []
    for s, y in reversed(pairs):
        a = rho(s, y) * dot(s, q)
        q = q - a * y
        coefs.append(a)
    gamma, have = torch.ones_like(dot(g, g)), torch.zeros_like(dot(g, g), dtype=torch.bool)
    for s, y in reversed(pairs):
        use = (rho(s, y) > 0) & ~have
        gamma = torch.where(use, dot(s, y) / dot(y, y / scale), gamma)
        have |= use
    r = q / scale * gamma
    for (s, y), a in zip(pairs, reversed(coefs), strict=True):
        r = r + s * (a - rho(s, y) * dot(y, r))
    return r


@pytest.mark.parametrize("columnwise", [False, True])
@pytest.mark.parametrize("history", ["wrapped", "cleared", "skipped_pair", "frozen_column"])
def test_compact_two_loop_equals_the_textbook_recursion(columnwise: bool, history: str) -> None:
    """Stacked memory times a vector equals the pair-by-pair recursion on the same pairs:
    past its size (the oldest pairs drop out), refilled after a clear, with a pair of
    negative curvature (skipped), and with a column frozen in the newest pairs (its s = y = 0:
    its gamma comes from an older pair); all after a re-target to a new alpha."""
    gen = torch.Generator().manual_seed(5)
    rows, cols, size = 7, 3, 4
    scale = torch.rand(rows, cols, generator=gen, dtype=F64) + 0.5
    mem = LBFGSMemory(size=size)
    steps: list[tuple[torch.Tensor, torch.Tensor]] = []
    for k in range(6):  # two more than the memory holds
        s = torch.randn(rows, cols, generator=gen, dtype=F64)
        yd = 2 * s + 0.3 * torch.randn(rows, cols, generator=gen, dtype=F64)
        if history == "skipped_pair" and k == 4:
            yd = -yd  # s.y < 0 at alpha = 2 too: the pair must not count
        if history == "frozen_column" and k >= 4:
            s[:, 1], yd[:, 1] = 0, 0
        if history == "cleared" and k == 3:
            mem.clear()
            steps.clear()
        steps.append((s, yd))
        mem.push(s, yd, 0.5, columnwise)
    mem.retarget(2.0)

    def penalised(s: torch.Tensor, yd: torch.Tensor, alpha: float) -> torch.Tensor:
        y = yd.clone()
        y[:-1] += alpha * s[:-1]
        return y

    pairs = [(s, penalised(s, yd, 2.0)) for s, yd in steps[-size:]]
    assert len(mem) == len(pairs)
    g = torch.randn(rows, cols, generator=gen, dtype=F64)
    quad = (lambda q: (q * q / scale).sum(0)) if columnwise else (
        lambda q: (q * q / scale).sum().reshape(1))
    ours = two_loop(g, mem, lambda q: q / scale, quad)
    torch.testing.assert_close(ours, textbook_two_loop(g, pairs, scale, columnwise))


def test_lbfgs_memory_retarget_equals_fresh_pairs() -> None:
    """Re-targeting the stored pairs to a new alpha gives exactly the pairs one would build
    at that alpha: ``y = y_data + alpha * s`` with the bias row unpenalised."""
    rng = torch.Generator().manual_seed(0)
    s = [torch.randn(4, 2, generator=rng, dtype=F64) for _ in range(3)]
    yd = [si * 2 + 0.1 * torch.randn(4, 2, generator=rng, dtype=F64) for si in s]
    mem = LBFGSMemory(size=5)
    for si, ydi in zip(s, yd, strict=True):
        mem.push(si, ydi, 0.5, columnwise=True)
    mem.retarget(3.0)
    for si, ydi, (_, yi, rho) in zip(s, yd, mem.pairs(), strict=True):
        pen = si.clone()
        pen[-1] = 0
        torch.testing.assert_close(yi, ydi + 3.0 * pen)
        torch.testing.assert_close(rho, 1.0 / (si * yi).sum(0))


# --------------------------------------------------------------------------------------
# Losses against autograd
# --------------------------------------------------------------------------------------


def softmax_ce(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (torch.logsumexp(z, 1) - (z * y).sum(1)).mean().reshape(1)


def sigmoid_ce(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none").mean(0)


def sq_hinge(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.clamp_min(1 - y * z, 0).pow(2).mean(0)


LOSSES = [
    (MultinomialLoss, softmax_ce, lambda y: y),
    (SigmoidLoss, sigmoid_ce, lambda y: y),
    (SquaredHingeLoss, sq_hinge, lambda y: 2 * y - 1),
]


@pytest.mark.parametrize(("cls", "ref", "enc"), LOSSES, ids=["softmax", "sigmoid", "sqhinge"])
def test_loss_value_gradient_and_line_derivatives(cls, ref, enc) -> None:
    gen = torch.Generator().manual_seed(3)
    n, c = 50, 4
    y = enc(torch.nn.functional.one_hot(torch.randint(0, c, (n,), generator=gen), c).to(F64))
    z = torch.randn(n, c, generator=gen, dtype=F64) * 2
    dz = torch.randn(n, c, generator=gen, dtype=F64)
    loss = cls(y)
    value = loss.start(z)
    zg = z.clone().requires_grad_(True)
    f = ref(zg, y)
    torch.testing.assert_close(value, f.detach())
    (grad,) = torch.autograd.grad(f.sum(), zg)
    torch.testing.assert_close(loss.residual(), grad)

    t0 = 0.37
    t = torch.full((1,) if not loss.columnwise else (c,), t0, dtype=F64)
    df, d1, d2 = loss.line(dz, t)
    tt = t.clone().requires_grad_(True)
    phi = ref(z + tt * dz, y)  # loss along the line, per column or joint
    (g1,) = torch.autograd.grad(phi.sum(), tt, create_graph=True)
    (g2,) = torch.autograd.grad(g1.sum(), tt)
    torch.testing.assert_close(df, (phi - f).detach())
    torch.testing.assert_close(d1, g1.detach())
    if cls is not SquaredHingeLoss:  # piecewise quadratic: autograd's d2 is the same a.e.
        torch.testing.assert_close(d2, g2)
    else:
        torch.testing.assert_close(d2, g2, atol=1e-12, rtol=0)
    # accepting the trial point moves the cached logits there
    res = loss.accept()
    zt = (z + t0 * dz).requires_grad_(True)
    (grad_t,) = torch.autograd.grad(ref(zt, y).sum(), zt)
    torch.testing.assert_close(res, grad_t)


def test_multinomial_curvature_is_the_mean_softmax_hessian_diagonal() -> None:
    gen = torch.Generator().manual_seed(4)
    n, c = 30, 5
    y = torch.nn.functional.one_hot(torch.randint(0, c, (n,), generator=gen), c).to(F64)
    z = torch.randn(n, c, generator=gen, dtype=F64)
    loss = MultinomialLoss(y)
    loss.start(z)
    # Hessian of the mean loss w.r.t. one row's logits, averaged: mean_i H_i
    hs = [torch.autograd.functional.hessian(lambda zi: torch.logsumexp(zi, 0), z[i])
          for i in range(n)]
    torch.testing.assert_close(loss.curvature(), torch.diagonal(torch.stack(hs).mean(0)))


def test_columnwise_weights_are_second_derivatives() -> None:
    z = torch.linspace(-3, 3, 12, dtype=F64).reshape(6, 2)
    y = torch.tensor([[1, 0], [0, 1]] * 3, dtype=F64)
    sig = SigmoidLoss(y)
    sig.start(z)
    s = torch.sigmoid(z)
    torch.testing.assert_close(sig.weights(), s * (1 - s))
    hinge = SquaredHingeLoss(2 * y - 1)
    hinge.start(z)
    torch.testing.assert_close(hinge.weights(), 2.0 * ((1 - (2 * y - 1) * z) > 0).to(F64))


# --------------------------------------------------------------------------------------
# Basis: orthonormal, and the rotated problem is the original problem
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d"), [(200, 16), (20, 64)])
def test_basis_is_orthonormal_and_preserves_logits_and_penalty(n: int, d: int) -> None:
    x, _ = data(n, d, 3, seed=5)
    xt = torch.as_tensor(x, dtype=F64)
    basis = make_basis(xt)
    r = basis.vecs.shape[1]
    torch.testing.assert_close(basis.vecs.T @ basis.vecs, torch.eye(r, dtype=F64))
    assert basis.complete == (n > d)
    if n <= d:
        assert r <= n - 1  # the span of the centred rows
    torch.testing.assert_close(basis.feats, (xt - xt.mean(0)) @ basis.vecs)
    torch.testing.assert_close(basis.var, basis.feats.pow(2).mean(0))
    if n > d:  # full rotation: covariance diagonal in the basis
        cov = basis.feats.T @ basis.feats / n
        torch.testing.assert_close(cov, torch.diag(torch.diagonal(cov)), atol=1e-9, rtol=0)
    theta = torch.randn(r + 1, 3, dtype=F64)
    coef, b = basis.to_original(theta)
    # same logits on the original, un-centred features; same penalty (rotation invariant)
    torch.testing.assert_close(xt @ coef + b, basis.feats @ theta[:-1] + theta[-1])
    torch.testing.assert_close((coef**2).sum(), (theta[:-1] ** 2).sum())
    torch.testing.assert_close(basis.from_original(coef, b), theta)


@pytest.mark.parametrize(("n", "d"), [(200, 16), (20, 64)])
def test_basis_extend_equals_a_basis_of_all_rows(n: int, d: int) -> None:
    """The refit's extended basis keeps the old columns first and represents the new rows
    exactly: its logits match the original features for any parameters."""
    x, _ = data(n + 10, d, 3, seed=6)
    xt = torch.as_tensor(x, dtype=F64)
    train, new = xt[:n], xt[n:]
    basis = make_basis(train)
    ext = basis.extend(new, basis.rotate(new), train)
    r0, r = basis.vecs.shape[1], ext.vecs.shape[1]
    assert r >= r0
    torch.testing.assert_close(ext.vecs[:, :r0], basis.vecs)
    torch.testing.assert_close(ext.vecs.T @ ext.vecs, torch.eye(r, dtype=F64))
    theta = torch.randn(r + 1, 2, dtype=F64)
    coef, b = ext.to_original(theta)
    torch.testing.assert_close(xt @ coef + b, ext.feats @ theta[:-1] + theta[-1])


def test_zero_objective_is_log_c_for_softmax() -> None:
    x, y = data(50, 6, 5, seed=7)
    basis = make_basis(torch.as_tensor(x, dtype=F64))
    f0 = zero_objective(basis, MultinomialLoss(torch.as_tensor(onehot(y, 5))), 5)
    torch.testing.assert_close(f0, torch.tensor([np.log(5)], dtype=F64))


# --------------------------------------------------------------------------------------
# Thread policy
# --------------------------------------------------------------------------------------


def test_gemm_tuner_tries_each_option_then_keeps_the_faster_and_explores() -> None:
    tuner = GemmTuner(explore=4)
    assert tuner.choose(2) == 2  # untried first
    tuner.record(2, 3e-9)
    assert tuner.choose(2) == 1
    tuner.record(1, 1e-9)  # one thread is faster (busy machine)
    picks = [tuner.choose(2) for _ in range(8)]
    # calls 3..10: the faster option except every 4th call, which re-tries the other
    assert picks == [1, 2, 1, 1, 1, 2, 1, 1]
    tuner.record(2, 1e-10)  # one fast two-thread product (the machine went idle): follows
    assert tuner.choose(2) == 2
    assert GemmTuner().choose(1) == 1


def test_gemm_tuner_ignores_one_slow_product_but_follows_a_lasting_slowdown() -> None:
    tuner = GemmTuner(explore=1000, window=4)
    tuner.record(2, 1e-9)
    tuner.record(1, 2e-9)
    tuner.record(2, 8e-9)  # one outlier (descheduled thread): still two threads
    assert tuner.choose(2) == 2
    for _ in range(3):  # four slow products in a row: the cores are shared now
        tuner.record(2, 4e-9)
    assert tuner.choose(2) == 1


def test_threads_serial_and_gemm_respect_the_configured_count() -> None:
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cpu = torch.device("cpu")
        with cpu_serial():
            assert torch.get_num_threads() == 1
            assert configured_threads() == 2  # the caller's count, for the GEMMs inside
            tuner = GemmTuner()
            big = Threads(cpu, gemm_flops=1e9, tuner=tuner)
            with big.gemm(1e9):
                assert torch.get_num_threads() == 2  # untried option first
            assert torch.get_num_threads() == 1  # restored after the product
            assert 2 in tuner.cost
            small = Threads(cpu, gemm_flops=1e3, tuner=tuner)
            with small.gemm(1e3):
                assert torch.get_num_threads() == 1  # fork/join would dominate
            assert small.n == 1 and 1 not in tuner.cost  # small products are not timed
        assert torch.get_num_threads() == 2
        assert configured_threads() == 2
    finally:
        torch.set_num_threads(prev)
