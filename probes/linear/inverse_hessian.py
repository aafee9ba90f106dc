"""The L-BFGS model of the inverse Hessian: the curvature pairs and their product with a vector.

The textbook two-loop recursion walks the ``m`` stored pairs one at a time: ``4 m`` inner
products and vector updates, each a pass over all ``(r + 1) x C`` parameters. On the paper's
problems (``m = 10``, 130k parameters) those ~40 small passes and their dispatch cost as much
as a tenth of the path's GEMMs. Here the pairs live in stacked buffers and the recursion is
done in the compact form (Byrd, Nocedal and Schnabel 1994): four passes over the stacks
(``S.g``, ``g - Y^T a``, ``Y.r``, ``r + S^T c``) and two ``m x m`` triangular solves for the
coefficients, which the textbook loops compute one scalar at a time. The inner products
``s_i . y_j`` the solves need are kept up to date as pairs arrive (two passes per new pair),
and because the penalty is quadratic they follow a change of ``alpha`` without touching the
vectors: ``s_i . y_j = s_i . yd_j + alpha s_i^W . s_j^W`` (``W``: the penalised rows).

Joint (softmax) problems take one inner product over all entries, column-wise (one-vs-rest)
problems one per column: every quantity then carries a trailing axis ``K`` (1 or ``C``) and
the same code runs ``C`` independent recursions at once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Tensor = torch.Tensor

__all__ = ["LBFGSMemory", "two_loop"]


def _dots(stack: Tensor, v: Tensor, columnwise: bool) -> Tensor:
    """Inner product of every stacked vector with ``v``: ``[m, K]``."""
    if columnwise:
        return torch.einsum("mrc,rc->mc", stack, v)
    return torch.mv(stack.reshape(stack.shape[0], -1), v.reshape(-1)).unsqueeze(1)


def _combine(stack: Tensor, coef: Tensor, columnwise: bool) -> Tensor:
    """``sum_i coef_i * stack_i`` (per column when column-wise): ``[r + 1, C]``."""
    if columnwise:
        return torch.einsum("mrc,mc->rc", stack, coef)
    return torch.mv(stack.reshape(stack.shape[0], -1).T, coef[:, 0]).reshape(stack.shape[1:])


class LBFGSMemory:
    """Curvature pairs kept across the regularisation path, in stacked ring buffers.

    Only the *data* part ``yd`` of each ``y`` is kept as given; ``y = yd + alpha * s`` (bias
    row excluded) is rebuilt when ``alpha`` changes, which is exact because the penalty is
    quadratic, and ``rho = 1 / s.y`` with it (0 for a pair with ``s.y <= 0``: it is skipped).
    """

    def __init__(self, size: int = 10) -> None:
        self.size = size
        self.count = 0  # pairs stored
        self.head = 0  # slot of the oldest pair (slots fill 0, 1, ... and then wrap)
        self.alpha: float | None = None
        self.columnwise = False
        self._s: Tensor | None = None  # [size, r + 1, C]
        self._yd = self._y = torch.empty(0)
        # s_i . yd_j and s_i^W . s_j^W of slot pairs, valid where i is older than j or i == j;
        # _sy = _syd + alpha * _ssw at the current alpha. All [size, size, K].
        self._syd = self._ssw = self._sy = torch.empty(0)
        self._rho = torch.empty(0)  # [size, K]
        # y.H0.y per slot for the current alpha and preconditioner (``key``): the scaling of
        # the initial matrix needs it for the newest pair, one preconditioner pass each time
        self._yhy: list[Tensor | None] = []
        self._yhy_key: object = None

    def __len__(self) -> int:
        return self.count

    def order(self) -> list[int]:
        """Slots from the oldest pair to the newest."""
        return [(self.head + i) % self.size for i in range(self.count)]

    def pairs(self) -> list[tuple[Tensor, Tensor, Tensor]]:
        """``(s, y, rho)`` of every pair, oldest first (views of the buffers)."""
        if self._s is None:
            return []
        return [(self._s[k], self._y[k], self._rho[k]) for k in self.order()]

    def _allocate(self, s: Tensor, columnwise: bool) -> None:
        k = s.shape[1] if columnwise else 1
        self._s = s.new_zeros((self.size, *s.shape))
        self._yd, self._y = torch.zeros_like(self._s), torch.zeros_like(self._s)
        self._syd = s.new_zeros(self.size, self.size, k)
        self._ssw, self._sy = torch.zeros_like(self._syd), torch.zeros_like(self._syd)
        self._rho = s.new_zeros(self.size, k)
        self._yhy = [None] * self.size
        self.columnwise = columnwise
        self.count = self.head = 0

    def retarget(self, alpha: float) -> None:
        """Rebuild ``y`` and ``rho`` of every stored pair for a new ``alpha``."""
        if alpha == self.alpha:
            return
        self.alpha = alpha
        self._yhy = [None] * self.size
        if self._s is None or not self.count:
            return
        n = self.count
        self._y[:n, :-1].copy_(self._yd[:n, :-1]).add_(self._s[:n, :-1], alpha=alpha)
        torch.add(self._syd, self._ssw, alpha=alpha, out=self._sy)
        sy = torch.diagonal(self._sy[:n, :n], dim1=0, dim2=1).T  # [n, K]
        self._rho[:n] = _inverse_curvature(sy)

    def push(self, s: Tensor, yd: Tensor, alpha: float, columnwise: bool) -> None:
        """Store the step ``s`` and data-gradient change ``yd``; drop the oldest beyond
        ``size``."""
        if (self._s is None or self._s.shape[1:] != s.shape or self._s.dtype != s.dtype
                or self._s.device != s.device or columnwise != self.columnwise):
            self._allocate(s, columnwise)
        self.retarget(alpha)
        if self.count < self.size:
            k = self.count
            self.count += 1
        else:
            k = self.head
            self.head = (self.head + 1) % self.size
        self._s[k] = s  # type: ignore[index]
        self._yd[k] = yd
        y = self._y[k]
        y.copy_(yd)
        y[:-1].add_(s[:-1], alpha=alpha)  # the bias row is not penalised
        n = self.count  # slots [0, n) are filled
        stack = self._s[:n]  # type: ignore[index]
        self._syd[:n, k] = _dots(stack, yd, columnwise)
        self._ssw[:n, k] = _dots(stack[:, :-1], s[:-1], columnwise)
        self._sy[:n, k] = self._syd[:n, k] + alpha * self._ssw[:n, k]
        self._rho[k] = _inverse_curvature(self._sy[k, k])
        self._yhy[k] = None

    def y_h0_y(self, k: int, quad: Callable[[Tensor], Tensor], key: object) -> Tensor:
        """``y . H0 y`` of slot ``k``, cached until ``alpha`` or the preconditioner (``key``,
        compared by identity) changes."""
        if key is None or key is not self._yhy_key:
            self._yhy = [None] * self.size
            self._yhy_key = key
        val = self._yhy[k]
        if val is None:
            val = quad(self._y[k])
            if key is not None:
                self._yhy[k] = val
        return val

    def clear(self) -> None:
        """Forget every pair (after a direction that was not one of descent)."""
        self.count = self.head = 0
        self._yhy = [None] * self.size


def _inverse_curvature(sy: Tensor) -> Tensor:
    """``1 / s.y``, or 0 where ``s.y <= 0`` (such a pair would break positive definiteness)."""
    return torch.where(sy > 0, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))


def two_loop(
    g: Tensor, memory: LBFGSMemory, precond: Callable[[Tensor], Tensor],
    quad: Callable[[Tensor], Tensor], precond_key: object = None,
) -> Tensor:
    """L-BFGS inverse-Hessian product ``H g`` with initial matrix ``gamma * precond``: the
    two-loop recursion in compact form (see the module docstring).

    ``quad(y)`` is ``y . precond(y)`` (one value, or one per column when the memory is
    column-wise), which the scaling ``gamma`` needs; a preconditioner can compute it in half
    the work of ``precond``. ``precond_key`` (any object that changes, by identity, whenever
    ``precond`` does; e.g. the curvature model) lets the memory cache it.
    """
    n = memory.count
    if n == 0 or memory._s is None:
        return precond(g)
    cw = memory.columnwise
    slots = memory.order()
    # the slots oldest first, made on the device (a host list would be a blocking copy)
    perm = (torch.arange(n, device=g.device) + memory.head) % memory.size
    s_stack, y_stack = memory._s[:n], memory._y[:n]
    # the m x m algebra in float64: it is tiny, and the triangular solves subtract
    # products of inner products that float32 would round
    f64 = torch.float64
    rho = memory._rho[:n][perm].to(f64).T  # [K, m], oldest pair first
    sy = memory._sy[:n, :n][perm][:, perm].to(f64).permute(2, 0, 1)  # [K, m, m]
    upper = torch.triu(sy, diagonal=1)  # s_i . y_j for i older than j
    eye = torch.eye(n, dtype=f64, device=g.device)
    # first loop: a_i = rho_i (s_i . g - sum_{j newer} a_j s_i . y_j)
    sg = _dots(s_stack, g, cw)[perm].to(f64).T  # [K, m]
    a = torch.linalg.solve_triangular(eye + rho[:, :, None] * upper, (rho * sg)[:, :, None],
                                      upper=True)  # [K, m, 1]
    q = g - _combine(y_stack, _to_slots(a, perm, g.dtype), cw)
    r = precond(q)
    gamma = _scaling(memory, slots, quad, precond_key)
    if gamma is not None:
        r *= gamma.clamp(1e-3, 1e3)
    # second loop: b_i = rho_i (y_i . r + sum_{j older} (a_j - b_j) s_j . y_i)
    lower = upper.transpose(1, 2)
    yr = _dots(y_stack, r, cw)[perm].to(f64).T
    b = torch.linalg.solve_triangular(eye + rho[:, :, None] * lower,
                                      rho[:, :, None] * (yr[:, :, None] + lower @ a),
                                      upper=False)
    r += _combine(s_stack, _to_slots(a - b, perm, g.dtype), cw)
    return r


def _to_slots(coef: Tensor, perm: Tensor, dtype: torch.dtype) -> Tensor:
    """``[K, m, 1]`` coefficients in pair order -> ``[m, K]`` in slot order."""
    out = torch.empty(coef.shape[1], coef.shape[0], dtype=dtype, device=coef.device)
    out[perm] = coef[:, :, 0].T.to(dtype)
    return out


def _scaling(memory: LBFGSMemory, slots: list[int], quad: Callable[[Tensor], Tensor],
             key: object) -> Tensor | None:
    """``gamma = s.y / y.H0.y`` of the newest pair, per column the newest pair in which the
    column moved (frozen columns contribute ``s = y = 0`` to later pairs); None without one.
    With a good preconditioner it stays close to 1."""
    gamma, have = None, None
    for k in reversed(slots):
        rho = memory._rho[k]
        need = rho > 0 if have is None else (rho > 0) & ~have
        if not bool(need.any()):
            continue
        yhy = memory.y_h0_y(k, quad, key)
        g_k = (1.0 / rho.clamp_min(1e-30)) / yhy.clamp_min(1e-30)
        gamma = torch.where(need, g_k, torch.ones_like(g_k) if gamma is None else gamma)
        have = need if have is None else have | need
        if bool(have.all()):
            break
    return gamma
