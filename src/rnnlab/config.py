"""Model and training configuration: dataclasses, presets, validation and JSON round trip.

Every value that changes what is trained lives here, by name; the CLI and `rnnlab.train` fill these
dataclasses and nothing else decides hyperparameters.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from rnnlab.data.tokenizers import WORD_PATTERN
from rnnlab.errors import RnnlabError

CELLS = ("rnn-tanh", "rnn-relu", "irnn", "lstm", "gru", "gru-cho", "mut1", "mut2", "mut3", "mrnn",
         "mingru", "minlstm", "ssm")  # fmt: skip
OPTIMIZERS = ("adam", "adamw", "adagrad", "rmsprop", "sgd", "nesterov", "hf")
INITS = ("default", "esn")
TOKENIZERS = ("char", "byte", "word", "bpe")
DECAYS = ("cosine", "linear", "none")


@dataclass
class ModelConfig:
    """The network's shape. Changing any of these makes a different model (so `--resume` refuses)."""

    vocab_size: int = 0  # V, set from the tokenizer
    cell: str = "lstm"
    layers: int = 2  # L
    hidden: int = 256  # H
    embed: int = 64  # D; 0 means one-hot input (D = V)
    dropout: float = 0.0  # between layers and before the head
    variational: bool = False  # one dropout mask per sequence (locked dropout) instead of per step
    residual: bool = False  # y = H(x) + x between layers of equal size
    highway: bool = False  # y = g ⊙ H(x) + (1 − g) ⊙ x between layers of equal size
    layer_norm: bool = False  # LayerNorm on each layer's output
    learn_init: bool = False  # learned initial hidden state instead of zeros
    peephole: bool = False  # lstm only: peephole connections from the cell state to the gates
    factors: int = 0  # mrnn only: factors of the 3-way tensor (0: = hidden)
    tie_weights: bool = False  # output layer reuses the embedding matrix (a projection H -> D when D != H)

    def validate(self) -> None:
        """Raise RnnlabError for impossible values."""
        check_types(self)
        if self.vocab_size < 0:
            raise RnnlabError(f"vocab_size must be >= 0, got {self.vocab_size}")
        if self.cell not in CELLS:
            raise RnnlabError(f"unknown cell {self.cell!r}; choose one of: {', '.join(CELLS)}")
        _positive("--layers", self.layers)
        _positive("--hidden", self.hidden)
        if self.factors < 0:
            raise RnnlabError(f"--factors must be >= 0, got {self.factors}")
        if self.learn_init and self.cell == "ssm":
            raise RnnlabError("--learn-init does not apply to --cell ssm (its state is a conv buffer and an ssm state)")
        if self.peephole and self.cell != "lstm":
            raise RnnlabError("--peephole applies to --cell lstm only")
        if self.cell in ("mut1", "mut2") and self.embed != self.hidden:
            raise RnnlabError(f"--cell {self.cell} adds its input un-weighted, so it needs --embed equal to --hidden")
        if self.embed < 0:
            raise RnnlabError(f"--embed must be >= 0 (0 = one-hot input), got {self.embed}")
        if not 0.0 <= self.dropout < 1.0:
            raise RnnlabError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.tie_weights and self.embed == 0:
            raise RnnlabError("--tie-weights needs an embedding (--embed > 0)")
        if self.residual and self.highway:
            raise RnnlabError("--residual and --highway are two kinds of skip connection; choose one")


@dataclass
class TrainConfig:
    """How to train: data, optimisation, schedule, logging. Sizes use N batch, T time."""

    inputs: list[str] = field(default_factory=list)  # empty: the built-in default corpus
    val_files: list[str] = field(default_factory=list)
    val_fraction: float = 0.05  # taken from the end of each training file when no --val-file
    tokenizer: str = "char"
    unknown: str = "error"  # char tokenizer: "error" on unseen characters, or "unk" to map them
    vocab_size_limit: int = 0  # word: most frequent pieces kept, <unk> included (0: all); bpe: 0 means 1000
    min_count: int = 1  # word: pieces seen fewer times in training become <unk>
    lowercase: bool = False  # word and bpe: lower-case the text before tokenizing
    word_pattern: str = WORD_PATTERN  # word: regex for the pieces (text between matches is a piece too)
    batch_size: int = 32  # N parallel streams
    seq_len: int = 128  # T, the truncated-BPTT window
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.9  # sgd, nesterov and rmsprop
    weight_decay: float = 0.0
    init: str = "default"  # "esn": W_hh scaled to spectral_radius, input weights N(0, 1/D), biases 0
    spectral_radius: float = 1.1  # --init esn (Sutskever et al. 2013 use 1.1 for tanh units)
    hf_cg_iters: int = 50  # --optimizer hf: most conjugate-gradient iterations per update
    hf_curvature_fraction: float = 0.25  # --optimizer hf: share of the N streams for curvature products
    hf_structural_damping: float = 0.3  # --optimizer hf: μ (Martens & Sutskever 2011)
    betas: tuple[float, float] = (0.9, 0.999)
    reset_prob: float = 0.02  # chance per stream and chunk of restarting from the initial state (see trainer)
    clip_norm: float = 5.0  # 0 disables
    clip_value: float = 0.0  # 0 disables
    warmup: int = 100  # steps of linear warmup
    decay: str = "cosine"  # over max_steps and/or max_time
    min_lr_ratio: float = 0.1
    max_steps: int = 0  # 0: no step limit
    max_time: float = 0.0  # seconds; 0: no time limit
    epochs: float = 0.0  # 0: no epoch limit
    eval_every: int = 500
    eval_tokens: int = 0  # cap on validation tokens per periodic evaluation; 0: all
    checkpoint_every: int = 500
    log_every: int = 10
    patience: int = 0  # early stopping after this many evaluations without improvement; 0: off
    seed: int = 1337
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 | fp16 | auto (bf16 where the hardware has it, else fp32): autocast
    compile: bool = False  # torch.compile the model for the training step

    def validate(self) -> None:
        """Raise RnnlabError for impossible values."""
        check_types(self)
        if not 0 <= self.seed < 2**63:
            raise RnnlabError(f"--seed must be in [0, 2**63), got {self.seed}")
        if self.precision not in ("fp32", "bf16", "fp16", "auto"):
            raise RnnlabError(f"--precision must be fp32, bf16, fp16 or auto, got {self.precision!r}")
        if self.tokenizer not in TOKENIZERS:
            raise RnnlabError(f"unknown tokenizer {self.tokenizer!r}; choose one of: {', '.join(TOKENIZERS)}")
        if self.unknown not in ("error", "unk"):
            raise RnnlabError(f"--unknown must be 'error' or 'unk', got {self.unknown!r}")
        if self.vocab_size_limit < 0:
            raise RnnlabError(f"--vocab-size must be >= 0 (0: no limit), got {self.vocab_size_limit}")
        if self.min_count < 1:
            raise RnnlabError(f"--min-count must be >= 1, got {self.min_count}")
        if self.optimizer not in OPTIMIZERS:
            raise RnnlabError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if self.optimizer == "nesterov" and self.momentum == 0:
            raise RnnlabError("--optimizer nesterov needs --momentum > 0")
        if self.optimizer == "hf" and (self.precision in ("bf16", "fp16") or self.compile):
            raise RnnlabError("--optimizer hf runs in fp32 without --compile (it needs second derivatives)")
        if self.init not in INITS:
            raise RnnlabError(f"unknown init {self.init!r}; choose one of: {', '.join(INITS)}")
        if not self.spectral_radius > 0:
            raise RnnlabError(f"--spectral-radius must be > 0, got {self.spectral_radius}")
        if not 0 < self.hf_curvature_fraction <= 1:
            raise RnnlabError(f"--hf-curvature-fraction must be in (0, 1], got {self.hf_curvature_fraction}")
        _positive("--hf-cg-iters", self.hf_cg_iters)
        if self.hf_structural_damping < 0:
            raise RnnlabError(f"--hf-structural-damping must be >= 0, got {self.hf_structural_damping}")
        if self.decay not in DECAYS:
            raise RnnlabError(f"unknown decay {self.decay!r}; choose one of: {', '.join(DECAYS)}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise RnnlabError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        _positive("--batch-size", self.batch_size)
        _positive("--seq-len", self.seq_len)
        _positive("--eval-every", self.eval_every)
        _positive("--checkpoint-every", self.checkpoint_every)
        _positive("--log-every", self.log_every)
        if not self.lr > 0:
            raise RnnlabError(f"--lr must be > 0, got {self.lr}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise RnnlabError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        for name in ("clip_norm", "clip_value", "weight_decay", "max_time", "epochs", "momentum"):
            if getattr(self, name) < 0:
                raise RnnlabError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("warmup", "max_steps", "eval_tokens", "patience"):
            if getattr(self, name) < 0:
                raise RnnlabError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.reset_prob < 1.0:
            raise RnnlabError(f"--reset-prob must be in [0, 1), got {self.reset_prob}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise RnnlabError(f"--min-lr-ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise RnnlabError(f"--betas must be in [0, 1), got {self.betas}")


# Presets: sizes that make sense on a 2-core CPU (tiny, small, medium) and on a GPU (large).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "layers": 1,
        "hidden": 128,
        "embed": 32,
        "batch_size": 32,
        "seq_len": 64,
        "lr": 3e-3,
        "warmup": 20,
    },
    # The default recipe of benchmarks/quality.py: at equal wall time on 2 CPU cores, 2x256 beat 2x320
    # and 3x256; seq_len 64 with lr 3e-3 beat 128 with 2e-3; bf16 autocast is ~1.8x faster where the CPU
    # has native bf16 with no loss in quality at equal steps (benchmarks/results/quality.md).
    "small": {
        "layers": 2,
        "hidden": 256,
        "embed": 64,
        "batch_size": 32,
        "seq_len": 64,
        "lr": 3e-3,
        "precision": "auto",
    },
    "medium": {
        "layers": 2,
        "hidden": 512,
        "embed": 64,
        "batch_size": 64,
        "seq_len": 128,
        "lr": 2e-3,
        "dropout": 0.1,
    },
    "large": {
        "layers": 3,
        "hidden": 1024,
        "embed": 128,
        "batch_size": 128,
        "seq_len": 256,
        "lr": 1e-3,
        "dropout": 0.2,
    },
}


# Default learning rates too high for a cell are lowered to these unless --lr is given. mrnn: its
# hidden-to-hidden matrix is a product W_hf diag(gains) W_fh, so the small steps Adam takes on every
# factor compound; at 3e-3 the product's spectral radius grew from 0.7 to 5 in 900 steps on Shakespeare,
# the hidden units saturated and training diverged (valid 2.634 bpc from the best checkpoint), while at
# 1e-3 the same 6-minute run reached 2.24-2.26 (benchmarks/results/cells_quality.md).
CELL_MAX_LR: dict[str, float] = {"mrnn": 1e-3}


def build_configs(preset: str | None = None, **options: Any) -> tuple[ModelConfig, TrainConfig]:
    """Split keyword options into (ModelConfig, TrainConfig): preset values first, then `options`.

    Options that are None are treated as "not given"; a cell in `CELL_MAX_LR` gets at most that learning
    rate unless `lr` is given. Unknown names are an error, so a typo in the
    Python API fails as loudly as one on the command line.
    """
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise RnnlabError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    given = {k: v for k, v in options.items() if v is not None}
    values.update(given)
    cell, lr = values.get("cell", ModelConfig.cell), values.get("lr", TrainConfig.lr)
    if "lr" not in given and cell in CELL_MAX_LR and lr > CELL_MAX_LR[cell]:
        values["lr"] = CELL_MAX_LR[cell]
    model_names = {f.name for f in dataclasses.fields(ModelConfig)}
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - model_names - train_names)
    if unknown:
        raise RnnlabError(f"unknown option(s): {', '.join(unknown)}")
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    model = ModelConfig(**{k: v for k, v in values.items() if k in model_names})
    train = TrainConfig(**{k: v for k, v in values.items() if k in train_names})
    model.validate()
    train.validate()
    return model, train


def model_config_from_dict(data: Any, source: str = "config.json") -> ModelConfig:
    """Rebuild and validate a ModelConfig from config.json, ignoring keys added by later versions.
    Wrong types or values are an RnnlabError that names `source`."""
    return _from_dict(ModelConfig, data, source, "model")


def train_config_from_dict(data: Any, source: str = "config.json") -> TrainConfig:
    """Rebuild and validate a TrainConfig from config.json, ignoring keys added by later versions."""
    return _from_dict(TrainConfig, data, source, "train")


def _from_dict(cls: Any, data: Any, source: str, section: str) -> Any:
    if not isinstance(data, dict):
        raise RnnlabError(f"{source}: '{section}' must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k in names}
    if isinstance(values.get("betas"), list):
        values["betas"] = tuple(values["betas"])
    config = cls(**values)
    try:
        config.validate()
    except RnnlabError as exc:
        raise RnnlabError(f"{source}: {exc}") from None
    return config


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$")


def parse_duration(text: str) -> float:
    """'90s' -> 90.0, '20m' -> 1200.0, '1.5h' -> 5400.0, '45' -> 45.0 (seconds)."""
    match = _DURATION.match(text)
    if not match:
        raise RnnlabError(f"cannot read duration {text!r}; use e.g. 90s, 20m or 1.5h")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}[unit]


MAX_INT = 2**63  # integers are stored as int64 in checkpoints and handed to torch


def check_types(config: Any) -> None:
    """Raise RnnlabError unless every field of the dataclass `config` has its declared type, every float is
    finite and every integer fits in 64 bits (values from an edited config.json arrive unchecked)."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        flag, value, kind = "--" + f.name.replace("_", "-"), getattr(config, f.name), hints[f.name]
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
            if ok and not -MAX_INT < value < MAX_INT:
                raise RnnlabError(f"{flag} is too large: {value}")
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and not math.isfinite(value):
                raise RnnlabError(f"{flag} must be a finite number, got {value}")
        elif kind is str:
            ok = isinstance(value, str)
        else:  # list[str] or tuple[float, float]
            item = typing.get_args(kind)[0]
            accepted = (int, float) if item is float else item
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, accepted) and not isinstance(v, bool) and (item is str or math.isfinite(v)) for v in value
            )
            if ok and typing.get_origin(kind) is tuple and len(value) != len(typing.get_args(kind)):
                ok = False
        if not ok:
            raise RnnlabError(f"{flag} must be {_type_name(kind)}, got {value!r}")


def _type_name(kind: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if kind in names:
        return names[kind]
    return "a list of " + _type_name(typing.get_args(kind)[0]).removeprefix("a ").removeprefix("n ") + "s"


def _positive(flag: str, value: int) -> None:
    if value <= 0:
        raise RnnlabError(f"{flag} must be > 0, got {value}")
