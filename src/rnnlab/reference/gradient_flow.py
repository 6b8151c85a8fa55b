"""Vanishing and exploding gradients: how ‖∂L/∂h_{T−k}‖ grows or decays with k (Bengio et al. 1994).

Back-propagating through h_t = f(W h_{t−1} + x_t) multiplies the gradient by J_t = W^T diag(f'(a_t))
at every step. With W = ρ·Q for a random orthogonal Q, every singular value of W — and its spectral
radius — is ρ, so for the linear recurrence ‖∂L/∂h_{T−k}‖ = ρ^k exactly: it vanishes for ρ < 1 and
explodes for ρ > 1. tanh and ReLU multiply by f' ≤ 1 as well, so they need a larger ρ to explode.
"""

from __future__ import annotations

import numpy as np

NONLINEARITIES = ("linear", "relu", "tanh")


def gradient_norms(nonlinearity: str, rho: float, T: int = 60, H: int = 64, seed: int = 0) -> np.ndarray:
    """‖∂L/∂h_{T−k}‖ for k = 0..T, where L = u · h_T with ‖u‖ = 1 (so the first entry is 1)."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((H, H)))
    W = rho * Q  # all singular values (and |eigenvalues|) equal ρ
    x = rng.standard_normal((T, H)) * 0.5
    h, fprime = rng.standard_normal(H) * 0.5, np.empty((T, H))
    for t in range(T):
        a = W @ h + x[t]  # a_t = W h_{t−1} + x_t
        if nonlinearity == "linear":
            h, fprime[t] = a, 1.0
        elif nonlinearity == "relu":
            h, fprime[t] = np.maximum(a, 0.0), a > 0
        else:
            h = np.tanh(a)
            fprime[t] = 1.0 - h**2
    u = rng.standard_normal(H)
    dh = u / np.linalg.norm(u)
    norms = [1.0]
    for t in reversed(range(T)):
        dh = W.T @ (fprime[t] * dh)  # ∂L/∂h_{t−1} = Wᵀ diag(f'(a_t)) ∂L/∂h_t
        norms.append(float(np.linalg.norm(dh)))
    return np.array(norms)


def gradient_flow_table(rhos: tuple[float, ...], T: int = 60, steps: tuple[int, ...] = (10, 30, 60)) -> str:
    """A text table of ‖∂L/∂h_{T−k}‖ for each nonlinearity and ρ, at the given k."""
    header = f"{'recurrence':<10} {'rho':>5} " + " ".join(f"{f'k={k}':>10}" for k in steps)
    rows = [header, "-" * len(header)]
    for name in NONLINEARITIES:
        for rho in rhos:
            norms = gradient_norms(name, rho, T)
            rows.append(f"{name:<10} {rho:>5.2f} " + " ".join(f"{norms[k]:>10.3g}" for k in steps))
    return "\n".join(rows)


def plot_gradient_flow(path: str, rhos: tuple[float, ...], T: int = 60) -> None:
    """Save a PNG: one panel per nonlinearity, log ‖∂L/∂h_{T−k}‖ against k, one line per ρ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(NONLINEARITIES), figsize=(13, 4), sharey=True)
    for ax, name in zip(axes, NONLINEARITIES, strict=True):
        for rho in rhos:
            ax.semilogy(gradient_norms(name, rho, T), label=f"ρ = {rho:g}")
        ax.set_title(f"{name}: h_t = f(ρQ h_(t-1) + x_t)")
        ax.set_xlabel("steps back k")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("‖∂L/∂h_(T−k)‖")
    axes[-1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
