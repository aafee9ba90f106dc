"""Exceptions raised by the probes."""

from __future__ import annotations

__all__ = ["ProbeInputError"]


class ProbeInputError(ValueError):
    """Invalid input to a probe or metric (NaN/inf features, mismatched lengths, a single
    class, an empty split, ...).

    Subclasses :class:`ValueError` so that scikit-learn's estimator checks, which expect a
    ``ValueError`` for bad input, accept it, while callers can catch probe problems alone.
    """
