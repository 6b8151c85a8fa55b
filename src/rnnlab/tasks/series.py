"""A demo numeric series for next-value prediction: two sines of different periods plus noise, where the
last value is a poor forecast but the recent shape predicts the next value well."""

from __future__ import annotations

import numpy as np


def make_series(n: int = 2000, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """`n` values of sin(2πt/25) + 0.5 sin(2πt/7) + Gaussian noise."""
    t = np.arange(n, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return np.sin(2 * np.pi * t / 25) + 0.5 * np.sin(2 * np.pi * t / 7) + noise * rng.standard_normal(n)
