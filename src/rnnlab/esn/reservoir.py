"""Echo state networks: a fixed random reservoir and a linear readout solved in closed form.

Only the readout learns. The reservoir (input, recurrent, feedback and bias weights) is drawn once from a seed
and scaled; its states are collected over the training sequence and a ridge regression maps them to the
targets. Learning is a single linear solve, so trying many regularisation strengths is cheap (`ridge="cv"`).

Shapes follow the rest of rnnlab: `T` time, `D` input features, `H` reservoir units, `L` stacked reservoirs,
`O` outputs. Sequences are `(T, D)` tensors (one sequence at a time: the state is a single vector per layer).

The readout sees the augmented state z_t = [1, u_t, x¹_t, ..., xᴸ_t] and outputs y_t = W_out z_t.
With `feedback=True` the previous output y_{t-1} enters the first reservoir through W_fb: training feeds the
target there (teacher forcing), running freely feeds the network's own output.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.sparse import csr_array
from scipy.sparse.linalg import ArpackNoConvergence, eigs

from rnnlab.errors import RnnlabError
from rnnlab.rundir import WEIGHTS, atomic_save_tensors, load_tensors, read_run, write_run_config
from rnnlab.threads import one_thread

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEFAULT_RIDGES = tuple(10.0**k for k in range(-12, 3))


@dataclass
class ESNConfig:
    """Every hyperparameter of an echo state network; with `seed` it fixes the reservoir exactly."""

    input_size: int
    output_size: int
    hidden_size: int = 500
    layers: int = 1
    sparsity: float = 0.9  # fraction of recurrent weights that are zero, in [0, 1)
    spectral_radius: float = 0.9  # largest |eigenvalue| of each recurrent matrix W
    input_scaling: float = 1.0  # W_in entries are uniform in ±input_scaling
    bias_scaling: float = 0.0  # b entries are uniform in ±bias_scaling
    leak_rate: float = 1.0  # a in (0, 1]: 1 is a plain tanh reservoir, smaller is slower
    feedback: bool = False  # feed y_{t-1} back into the first reservoir
    feedback_scaling: float = 1.0  # W_fb entries are uniform in ±feedback_scaling
    noise: float = 0.0  # uniform ±noise added to the pre-activations while collecting training states
    ridge: float = 1e-6  # the regularisation used by the readout (set by `fit`)
    washout: int = 100  # initial states of each sequence left out of the regression
    seed: int = 0
    dtype: str = "float64"  # of the reservoir states; the readout is always solved in float64

    def __post_init__(self) -> None:
        checks = [
            (self.input_size >= 1, f"input size must be >= 1, got {self.input_size}"),
            (self.output_size >= 1, f"output size must be >= 1, got {self.output_size}"),
            (self.hidden_size >= 1, f"reservoir size must be >= 1, got {self.hidden_size}"),
            (self.layers >= 1, f"layers must be >= 1, got {self.layers}"),
            (0 <= self.sparsity < 1, f"sparsity must be in [0, 1), got {self.sparsity}"),
            (self.spectral_radius > 0, f"spectral radius must be > 0, got {self.spectral_radius}"),
            (0 < self.leak_rate <= 1, f"leak rate must be in (0, 1], got {self.leak_rate}"),
            (self.input_scaling >= 0, f"input scaling must be >= 0, got {self.input_scaling}"),
            (self.bias_scaling >= 0, f"bias scaling must be >= 0, got {self.bias_scaling}"),
            (self.feedback_scaling >= 0, f"feedback scaling must be >= 0, got {self.feedback_scaling}"),
            (self.noise >= 0, f"noise must be >= 0, got {self.noise}"),
            (self.ridge >= 0, f"ridge must be >= 0, got {self.ridge}"),
            (self.washout >= 0, f"washout must be >= 0, got {self.washout}"),
            (self.dtype in DTYPES, f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise RnnlabError(message)
        floats = [getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), float)]
        if not all(math.isfinite(v) for v in floats):
            raise RnnlabError("ESN hyperparameters must be finite numbers")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ESNConfig:
        """The inverse of `dataclasses.asdict`; unknown or missing keys are a clear error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RnnlabError(f"unknown ESN hyperparameters {unknown}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise RnnlabError(f"bad ESN config ({exc})") from None


@dataclass
class ESNState:
    """What carries over between calls: each reservoir's state x and the last output y."""

    x: list[torch.Tensor]
    y: torch.Tensor


@dataclass
class Reservoir:
    """One fixed random reservoir: x_t = (1−a) x_{t−1} + a tanh(W_in u_t + W x_{t−1} + W_fb y_{t−1} + b)."""

    W_in: torch.Tensor  # (H, D_in)
    W: torch.Tensor  # (H, H), spectral radius as configured
    b: torch.Tensor  # (H,)
    W_fb: torch.Tensor | None = field(default=None)  # (H, O) on the first reservoir with feedback


def spectral_radius(W: torch.Tensor) -> float:
    """Largest eigenvalue magnitude of a square matrix, in float64 on the CPU, to about 1e-10 relative.

    Small matrices get all their eigenvalues from LAPACK. From `KRYLOV_MIN_SIZE` rows on, ARPACK's implicitly
    restarted Arnoldi (`scipy.sparse.linalg.eigs`, as reservoirpy uses) finds just the outermost few, on W's sparse
    form. Should it not converge, LAPACK decides. One thread: the eigensolver gains little from more, and lost
    5-10x on a busy 2-core machine.
    """
    W = W.detach().to("cpu", torch.float64)
    with one_thread():
        if len(W) >= KRYLOV_MIN_SIZE and W.abs().sum() > 0:
            try:
                start = np.random.default_rng(0).uniform(-1, 1, len(W))  # a fixed start: the same answer every run
                # k=1 can settle on a near-outermost eigenvalue of the crowded circular-law rim (1.2518 for
                # 1.25); 8 values in a 40-vector space matched LAPACK to 1e-13 on 60 random reservoirs.
                values = eigs(_scipy_form(W), k=8, ncv=40, which="LM", v0=start, tol=1e-13, return_eigenvectors=False)
                return float(abs(values).max())
            except ArpackNoConvergence:
                pass
        return torch.linalg.eigvals(W).abs().max().item()


KRYLOV_MIN_SIZE = 128  # below this LAPACK's full eigendecomposition takes a few milliseconds


def _scipy_form(W: torch.Tensor) -> Any:
    """W for scipy: a CSR matrix when mostly zeros, else the dense array."""
    array = W.numpy()
    return csr_array(array) if (array != 0).mean() < 0.5 else array


def matvec_form(W: torch.Tensor) -> torch.Tensor:
    """W as a time loop multiplies by it on the CPU: compressed sparse rows with int32 indices, or dense.

    A step is one matrix-vector product bound by memory traffic. CSR reads ~12 bytes per nonzero against 8 per
    entry dense; with dispatch costs it wins from 200 units at sparsity >= 0.8 (300 units, sparsity 0.9: 14 µs
    against 33 µs) and from 500 units at sparsity >= 0.5. Smaller or denser matrices stay dense.
    """
    H, density = len(W), (W != 0).double().mean().item()
    if H < 200 or density > (0.5 if H >= 500 else 0.2):
        return W
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta": addmv is all we use
        csr = W.to_sparse_csr()
        return torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(), size=W.shape)


def random_reservoir_matrix(H: int, sparsity: float, radius: float, generator: torch.Generator) -> torch.Tensor:
    """An (H, H) float64 matrix: a fraction `sparsity` of zeros, uniform ±1 elsewhere, rescaled to `radius`."""
    W = torch.rand(H, H, generator=generator, dtype=torch.float64) * 2 - 1
    W = W * (torch.rand(H, H, generator=generator, dtype=torch.float64) >= sparsity)
    current = spectral_radius(W)
    if current == 0:  # e.g. a one-unit reservoir whose only weight was dropped
        W = torch.eye(H, dtype=torch.float64)
        current = 1.0
    return W * (radius / current)


def gram(Z: torch.Tensor) -> torch.Tensor:
    """ZᵀZ, exactly symmetric. On the CPU numpy's matmul sees a matrix times its own transpose and calls BLAS
    syrk, which computes one triangle: 0.11 s against torch's general matmul's 0.30 s at 3800 × 1002 float64."""
    if Z.device.type != "cpu":
        return Z.T @ Z
    Zn = Z.detach().contiguous().numpy()
    return torch.from_numpy(Zn.T @ Zn)


def ridge_solve(Z: torch.Tensor, Y: torch.Tensor, ridge: float) -> torch.Tensor:
    """W_out (O, F) minimising ‖Y − Z W_outᵀ‖² + ridge ‖W_out‖², in float64: (ZᵀZ + ridge·I)⁻¹ ZᵀY.

    Cholesky (half LU's work) solves the symmetric system; LU takes over where rounding leaves it indefinite.
    """
    Z, Y = Z.double(), Y.double()
    G, C = gram(Z), Z.T @ Y
    G.diagonal().add_(ridge)
    L, info = torch.linalg.cholesky_ex(G)
    if info.item() == 0:
        return torch.cholesky_solve(C, L).T
    try:
        return torch.linalg.solve(G, C).T
    except RuntimeError:  # torch raises _LinAlgError (a RuntimeError) for a singular system
        raise RnnlabError(
            f"the readout's normal equations are singular at ridge {ridge:g}; use a larger ridge"
        ) from None


def ridge_cv(Z: torch.Tensor, Y: torch.Tensor, ridges: Sequence[float], folds: int = 5) -> tuple[float, list[float]]:
    """Blocked k-fold cross-validation over ridge strengths: the best ridge and the mean validation MSE of each.

    Each fold holds out one contiguous block (time series must not leak across the split). One eigendecomposition
    of each fold's training Gram matrix gives the solution for every ridge: W(λ) = V diag(1/(s+λ)) Vᵀ ZᵀY.
    """
    if not ridges or any(r < 0 for r in ridges):
        raise RnnlabError("ridge candidates must be a non-empty list of numbers >= 0")
    if len(Z) < 2 * folds:
        raise RnnlabError(f"{len(Z)} training steps are too few for {folds}-fold cross-validation")
    Z, Y = Z.double(), Y.double()
    bounds = [round(i * len(Z) / folds) for i in range(folds + 1)]
    G_all, C_all = gram(Z), Z.T @ Y
    errors = torch.zeros(len(ridges), dtype=torch.float64)
    for lo, hi in itertools.pairwise(bounds):
        Zv, Yv = Z[lo:hi], Y[lo:hi]
        s, V = torch.linalg.eigh(G_all - gram(Zv))
        VtC = V.T @ (C_all - Zv.T @ Yv)
        ZvV = Zv @ V
        for i, lam in enumerate(ridges):
            pred = ZvV @ (VtC / (s.clamp_min(0) + lam).clamp_min(1e-300)[:, None])
            errors[i] += ((pred - Yv) ** 2).mean() / folds
    scores = [e.item() if math.isfinite(e.item()) else math.inf for e in errors]
    return ridges[min(range(len(ridges)), key=scores.__getitem__)], scores


def nrmse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Root mean square error over the target's standard deviation (pooled over all outputs)."""
    p, t = torch.as_tensor(prediction).double(), torch.as_tensor(target).double()
    if p.shape != t.shape:
        raise RnnlabError(f"prediction shape {tuple(p.shape)} does not match target shape {tuple(t.shape)}")
    return (((p - t) ** 2).mean().sqrt() / t.std(correction=0).clamp_min(1e-300)).item()


class EchoStateNetwork:
    """A (possibly stacked) reservoir with a ridge-regression readout; CPU or GPU via `device`."""

    def __init__(
        self, config: ESNConfig, device: str | torch.device = "cpu", reservoirs: Sequence[Reservoir] | None = None
    ) -> None:
        """Draw the reservoirs from `config.seed`, or take `reservoirs` as given (matrices saved earlier, or drawn
        by another library to compare like for like); given ones must have the shapes the config implies."""
        self.config = config
        self.device = torch.device(device)
        self.dtype = DTYPES[config.dtype]
        given = self._draw() if reservoirs is None else reservoirs
        expected = {k: v for k, v in _shapes(config).items() if k != "W_out"}
        actual = {name: tuple(t.shape) for name, t in _named_matrices(given).items()}
        if actual != expected:
            raise RnnlabError(f"reservoir matrices do not match the config (shapes {actual} vs {expected})")
        self.reservoirs = [Reservoir(*(self._on_device(t) for t in (r.W_in, r.W, r.b, r.W_fb))) for r in given]
        self.noise_generator = torch.Generator().manual_seed(config.seed + 1)
        self.W_out: torch.Tensor | None = None  # (O, 1 + D + L·H), float64, set by fit
        self._recurrent = self._recurrent_matrices()

    def _draw(self) -> list[Reservoir]:
        """Each layer's matrices, float64, from one CPU generator: the same seed gives the same reservoir on every
        device."""
        c = self.config
        g = torch.Generator().manual_seed(c.seed)
        drawn = []
        for layer in range(c.layers):
            D_in = c.input_size if layer == 0 else c.hidden_size
            W = random_reservoir_matrix(c.hidden_size, c.sparsity, c.spectral_radius, g)
            W_in = (torch.rand(c.hidden_size, D_in, generator=g, dtype=torch.float64) * 2 - 1) * c.input_scaling
            b = (torch.rand(c.hidden_size, generator=g, dtype=torch.float64) * 2 - 1) * c.bias_scaling
            W_fb = None
            if c.feedback and layer == 0:
                W_fb = torch.rand(c.hidden_size, c.output_size, generator=g, dtype=torch.float64) * 2 - 1
                W_fb = W_fb * c.feedback_scaling
            drawn.append(Reservoir(W_in, W, b, W_fb))
        return drawn

    def _recurrent_matrices(self) -> list[torch.Tensor]:
        """The W of each layer as the time loop uses it: `matvec_form` on the CPU; dense on a GPU."""
        if self.device.type != "cpu":
            return [r.W for r in self.reservoirs]
        return [matvec_form(r.W) for r in self.reservoirs]

    def _on_device(self, t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(self.device, self.dtype)

    def initial_state(self) -> ESNState:
        """All reservoirs at rest and a zero previous output."""
        c = self.config
        zeros = [torch.zeros(c.hidden_size, device=self.device, dtype=self.dtype) for _ in range(c.layers)]
        return ESNState(zeros, torch.zeros(c.output_size, device=self.device, dtype=self.dtype))

    def _check(self, seq: torch.Tensor, width: int, what: str) -> torch.Tensor:
        seq = torch.as_tensor(seq)
        if seq.ndim == 1 and width == 1:
            seq = seq[:, None]
        if seq.ndim != 2 or seq.shape[1] != width:
            raise RnnlabError(f"{what} must have shape (T, {width}), got {tuple(seq.shape)}")
        if not torch.isfinite(seq).all():
            raise RnnlabError(f"{what} contains NaN or infinite values")
        return seq.to(self.device, self.dtype)

    # ---- state collection ------------------------------------------------------------------------------------
    def _harvest(
        self, U: torch.Tensor, state: ESNState, teacher: torch.Tensor | None, noise: float
    ) -> tuple[torch.Tensor, ESNState]:
        """Reservoir states (T, L·H) for inputs U (T, D), layer by layer, the input projection hoisted.

        Without feedback, or with the feedback taken from `teacher` (the targets: teacher forcing), every
        layer's drive W_in u_t + W_fb y_{t−1} + b is known for all t in advance: one matmul, then a loop that
        only does the recurrent part.
        """
        a = self.config.leak_rate
        layer_input, xs, new_x = U, [], []
        for layer, r in enumerate(self.reservoirs):
            drive = layer_input @ r.W_in.T + r.b  # (T, H): all time steps at once
            if r.W_fb is not None and teacher is not None:
                y_prev = torch.cat([state.y[None], teacher[:-1]])  # y_{t−1}: the previous target
                drive = drive + y_prev @ r.W_fb.T
            if noise:
                drive = drive + self._noise(drive.shape, noise)
            x, W = state.x[layer], self._recurrent[layer]
            states = drive  # each row turns into x_t in place: three ops a step and no allocation
            with one_thread():
                for x_t in states.unbind(0):
                    # x_t = (1−a) x_{t−1} + a tanh(W_in u_t + W x_{t−1} + W_fb y_{t−1} + b); v.lerp_(x, 1−a) = that
                    x = x_t.addmv_(W, x).tanh_().lerp_(x, 1 - a)
            xs.append(states)
            new_x.append(x)
            layer_input = states
        X = torch.cat(xs, dim=1)
        y_last = teacher[-1] if teacher is not None and len(teacher) else state.y
        return X, ESNState(new_x, y_last)

    def _noise(self, shape: torch.Size, scale: float) -> torch.Tensor:
        n = torch.rand(shape, generator=self.noise_generator, dtype=torch.float64) * 2 - 1
        return (n * scale).to(self.device, self.dtype)

    def _step(self, u: torch.Tensor, state: ESNState) -> tuple[torch.Tensor, ESNState]:
        """One time step of every layer and the readout, feeding back the network's own previous output."""
        a = self.config.leak_rate
        layer_input, new_x = u, []
        for layer, r in enumerate(self.reservoirs):
            drive = torch.addmv(r.b, r.W_in, layer_input)
            if r.W_fb is not None:
                drive = torch.addmv(drive, r.W_fb, state.y)
            # x_t = (1−a) x_{t−1} + a tanh(W_in u_t + W x_{t−1} + W_fb y_{t−1} + b)
            x = torch.addmv(drive, self._recurrent[layer], state.x[layer]).tanh_().lerp_(state.x[layer], 1 - a)
            new_x.append(x)
            layer_input = x
        y = self._readout(u[None], torch.cat(new_x)[None])[0]
        return y, ESNState(new_x, y)

    def _design(self, U: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """The augmented design matrix Z (T, 1 + D + L·H) = [1, u_t, x_t] in float64."""
        ones = torch.ones(len(U), 1, device=U.device, dtype=torch.float64)
        return torch.cat([ones, U.double(), X.double()], dim=1)

    def _readout(self, U: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        if self.W_out is None:
            raise RnnlabError("the ESN has no readout yet; call fit first")
        return (self._design(U, X) @ self.W_out.T).to(self.dtype)

    # ---- training --------------------------------------------------------------------------------------------
    def design_matrix(
        self, inputs: torch.Tensor | Sequence[torch.Tensor], targets: torch.Tensor | Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented states Z and targets Y of one or more training sequences, washout removed from each."""
        c = self.config
        if isinstance(inputs, torch.Tensor):
            inputs, targets = [inputs], [targets]
        if len(inputs) != len(targets) or not inputs:
            raise RnnlabError("fit needs one target sequence for each input sequence")
        Zs, Ys = [], []
        for U, Y64 in zip(inputs, targets, strict=True):
            # Y, in the reservoir's dtype, is the teacher; the regression uses the targets in float64.
            U, Y = self._check(U, c.input_size, "inputs"), self._check(Y64, c.output_size, "targets")
            if len(U) != len(Y):
                raise RnnlabError(f"inputs have {len(U)} steps but targets have {len(Y)}")
            if len(U) <= c.washout:
                raise RnnlabError(f"a sequence of {len(U)} steps is not longer than the washout ({c.washout})")
            X, _ = self._harvest(U, self.initial_state(), Y if c.feedback else None, c.noise)
            Zs.append(self._design(U, X)[c.washout :])
            Ys.append(torch.as_tensor(Y64).reshape(Y.shape)[c.washout :].to(self.device, torch.float64))
        return torch.cat(Zs), torch.cat(Ys)

    def fit(
        self,
        inputs: torch.Tensor | Sequence[torch.Tensor],
        targets: torch.Tensor | Sequence[torch.Tensor],
        ridge: float | str | None = None,
        ridges: Sequence[float] = DEFAULT_RIDGES,
    ) -> EchoStateNetwork:
        """Train the readout on (T, D) inputs and (T, O) targets (or lists of them).

        `ridge`: a number, `"cv"` for the best of `ridges` by blocked 5-fold cross-validation, or None for the
        config's. The chosen value is stored in `config.ridge`. With feedback the targets are teacher-forced.
        """
        Z, Y = self.design_matrix(inputs, targets)
        if ridge == "cv":
            ridge, _ = ridge_cv(Z, Y, ridges)
        elif isinstance(ridge, str):
            raise RnnlabError(f"ridge must be a number or 'cv', got {ridge!r}")
        return self.solve_readout(Z, Y, self.config.ridge if ridge is None else float(ridge))

    def solve_readout(self, Z: torch.Tensor, Y: torch.Tensor, ridge: float) -> EchoStateNetwork:
        """Set W_out from a design matrix (see `design_matrix`): lets callers try many ridges on one harvest."""
        if not ridge >= 0:
            raise RnnlabError(f"ridge must be >= 0, got {ridge}")
        self.W_out = ridge_solve(Z, Y, ridge)
        self.config.ridge = ridge
        return self

    # ---- running ---------------------------------------------------------------------------------------------
    def run(
        self, inputs: torch.Tensor, state: ESNState | None = None, teacher: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ESNState]:
        """Outputs (T, O) for inputs (T, D) and the final state.

        With feedback, `teacher` (T, O) supplies y_{t−1} (teacher forcing, e.g. to warm up on known outputs);
        without it the network feeds back its own outputs, step by step.
        """
        c = self.config
        U = self._check(inputs, c.input_size, "inputs")
        state = state or self.initial_state()
        if c.feedback and teacher is None:
            outputs = []
            with one_thread():
                for u in U:
                    y, state = self._step(u, state)
                    outputs.append(y)
            return torch.stack(outputs) if outputs else U.new_zeros(0, c.output_size), state
        if teacher is not None:
            teacher = self._check(teacher, c.output_size, "teacher")
        X, state = self._harvest(U, state, teacher, 0.0)
        Y = self._readout(U, X)
        if not c.feedback and len(Y):
            state.y = Y[-1]
        return Y, state

    def generate(self, steps: int, state: ESNState) -> torch.Tensor:
        """Closed loop: `steps` outputs (steps, O), each fed back as the next input (a next-step predictor, D == O).

        `state` is where to start, e.g. from `run` over known data: its `y` is the first input. (A network with
        feedback and external inputs runs on its own outputs with `run(inputs, state)`.)
        """
        c = self.config
        if steps < 0:
            raise RnnlabError(f"steps must be >= 0, got {steps}")
        if c.input_size != c.output_size:
            raise RnnlabError(f"generating from own outputs needs inputs ({c.input_size}) = outputs ({c.output_size})")
        outputs = []
        with one_thread():
            for _ in range(steps):
                y, state = self._step(state.y, state)
                outputs.append(y)
        return torch.stack(outputs) if outputs else torch.zeros(0, c.output_size, device=self.device, dtype=self.dtype)

    # ---- run directory ---------------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every matrix by name, as saved in model.safetensors."""
        if self.W_out is None:
            raise RnnlabError("the ESN has no readout yet; call fit before saving")
        return {"W_out": self.W_out} | _named_matrices(self.reservoirs)

    def save(
        self, run_dir: str | Path, extra: dict[str, Any] | None = None, data: dict[str, torch.Tensor] | None = None
    ) -> Path:
        """Write config.json (kind "esn", hyperparameters, version, `extra`) and model.safetensors into `run_dir`.

        `data` tensors (e.g. the end of the training series, to prime generation) are saved as `data.<name>`.
        """
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        tensors = self.state_tensors() | {f"data.{k}": v for k, v in (data or {}).items()}
        atomic_save_tensors(run_dir / WEIGHTS, tensors)
        write_run_config(run_dir, "esn", asdict(self.config), extra)
        return run_dir

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> EchoStateNetwork:
        """An ESN saved by `save`, with exactly the saved matrices (no reseeding)."""
        model = ESNConfig.from_dict(read_run(Path(run_dir), "esn")["model"])
        path = Path(run_dir) / WEIGHTS
        tensors = {k: v for k, v in load_tensors(path).items() if not k.startswith("data.")}
        try:
            W_out = tensors.pop("W_out")
            reservoirs = [
                Reservoir(**{k: tensors.pop(f"reservoir.{layer}.{k}", None) for k in ("W_in", "W", "b", "W_fb")})
                for layer in range(model.layers)
            ]
            if tensors or tuple(W_out.shape) != _shapes(model)["W_out"]:
                raise RnnlabError(f"unexpected tensors {sorted(tensors)} or W_out shape {tuple(W_out.shape)}")
            esn = cls(model, device, reservoirs)
        except (KeyError, RnnlabError) as exc:
            raise RnnlabError(f"{path} does not match config.json ({exc})") from None
        esn.W_out = W_out.to(esn.device, torch.float64)
        return esn


def _named_matrices(reservoirs: Sequence[Reservoir]) -> dict[str, torch.Tensor]:
    """The reservoirs' matrices by their names in model.safetensors ("reservoir.<layer>.<W_in|W|b|W_fb>")."""
    return {f"reservoir.{i}.{k}": v for i, r in enumerate(reservoirs) for k, v in vars(r).items() if v is not None}


def _shapes(c: ESNConfig) -> dict[str, tuple[int, ...]]:
    """The tensor shapes that a config implies."""
    H = c.hidden_size
    shapes: dict[str, tuple[int, ...]] = {"W_out": (c.output_size, 1 + c.input_size + c.layers * H)}
    for layer in range(c.layers):
        shapes |= {
            f"reservoir.{layer}.W_in": (H, c.input_size if layer == 0 else H),
            f"reservoir.{layer}.W": (H, H),
            f"reservoir.{layer}.b": (H,),
        }
        if c.feedback and layer == 0:
            shapes[f"reservoir.{layer}.W_fb"] = (H, c.output_size)
    return shapes


# ---- fitting and predicting series ---------------------------------------------------------------------------


@dataclass
class SeriesFit:
    """A next-value predictor for a multivariate series, with its held-out score."""

    esn: EchoStateNetwork
    columns: list[str]
    mean: torch.Tensor  # (D,) the series is standardised with these before it reaches the ESN
    std: torch.Tensor
    test_nrmse: float | None  # one-step NRMSE on the held-out tail (None with no tail)
    train_steps: int
    test_steps: int
    prime: torch.Tensor  # the last rows, standardised: `generate` starts from here by default

    def save(self, run_dir: str | Path) -> Path:
        """The ESN run directory, plus the columns, the standardisation and the rows to prime generation with."""
        extra = {
            "data": {
                "columns": self.columns,
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
                "test_nrmse": self.test_nrmse,
                "train_steps": self.train_steps,
                "test_steps": self.test_steps,
            }
        }
        return self.esn.save(run_dir, extra=extra, data={"prime": self.prime})


def fit_series(
    series: torch.Tensor,
    columns: Sequence[str],
    config: ESNConfig,
    test_fraction: float = 0.2,
    ridge: float | str | None = "cv",
    device: str = "cpu",
) -> SeriesFit:
    """Fit an ESN to predict each next row of `series` (T, D) from the rows so far; score the held-out tail."""
    if not 0 <= test_fraction < 1:
        raise RnnlabError(f"test fraction must be in [0, 1), got {test_fraction}")
    T = len(series)
    test_steps = int(T * test_fraction)
    train_steps = T - test_steps
    if train_steps - 1 <= config.washout:
        raise RnnlabError(f"{train_steps} training rows are not more than the washout ({config.washout}) + 1")
    mean, std = series[:train_steps].mean(0), series[:train_steps].std(0, correction=0)
    if (std == 0).any():
        raise RnnlabError(f"column {columns[int((std == 0).nonzero()[0])]!r} is constant over the training rows")
    z = (series - mean) / std
    esn = EchoStateNetwork(config, device=device).fit(z[: train_steps - 1], z[1:train_steps], ridge=ridge)
    score = None
    if test_steps:
        _, state = esn.run(z[:train_steps])  # warm: the state at the end of the training rows
        out, _ = esn.run(z[train_steps:-1], state)
        score = nrmse(out.cpu() * std + mean, series[train_steps + 1 :]) if test_steps > 1 else None
    prime = z[-max(config.washout, 500) :]  # long enough for the state to forget its zero start
    return SeriesFit(esn, list(columns), mean, std, score, train_steps, test_steps, prime)


def load_series(run_dir: str | Path, device: str = "cpu") -> tuple[EchoStateNetwork, dict[str, Any], torch.Tensor]:
    """An ESN saved by `SeriesFit.save`, its data section and its priming rows (standardised)."""
    esn = EchoStateNetwork.load(run_dir, device=device)
    data = read_run(Path(run_dir), "esn").get("data")
    prime = load_tensors(Path(run_dir) / WEIGHTS).get("data.prime")
    if not isinstance(data, dict) or prime is None or "columns" not in data:
        raise RnnlabError(f"{run_dir} holds an ESN but not a time-series model (made by `rnnlab esn train`)")
    return esn, data, prime


def predict_series(run_dir: str | Path, series: torch.Tensor, device: str = "cpu") -> tuple[torch.Tensor, float | None]:
    """One-step predictions (T, D) of each next row of `series`, and their NRMSE against the rows that follow."""
    esn, data, _ = load_series(run_dir, device)
    mean, std = torch.tensor(data["mean"]), torch.tensor(data["std"])
    out, _ = esn.run((series - mean) / std)
    out = out.cpu().double() * std + mean
    return out, nrmse(out[:-1], series[1:]) if len(series) > 2 else None


def generate_series(
    run_dir: str | Path, steps: int, prime: torch.Tensor | None = None, device: str = "cpu"
) -> torch.Tensor:
    """Continue a series for `steps` rows on the model's own outputs, after `prime` (default: its training tail)."""
    esn, data, saved = load_series(run_dir, device)
    mean, std = torch.tensor(data["mean"]), torch.tensor(data["std"])
    z = saved if prime is None else (prime - mean) / std
    if len(z) == 0:
        raise RnnlabError("generation needs at least one row to start from")
    _, state = esn.run(z)
    first = state.y[None]  # the prediction of the row after the prime
    out = torch.cat([first, esn.generate(steps - 1, state)]) if steps > 0 else first[:0]
    return out.cpu().double() * std + mean
