"""Model and training configuration: dataclasses, presets, validation and JSON round trip.

Every value that changes what is trained lives here, by name; the CLI and `rnnlab.train` fill these
dataclasses and nothing else decides hyperparameters.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rnnlab.data.tokenizers import WORD_PATTERN
from rnnlab.errors import RnnlabError
from rnnlab.nn import registry

# The fixed sets of choices: the field types below, so the CLI offers and checks them (typer's Literal choices).
Optimizer = Literal["adam", "adamw", "adagrad", "rmsprop", "sgd", "nesterov", "hf"]
Init = Literal["default", "esn"]
Tokenizer = Literal["char", "byte", "word", "bpe"]
Unknown = Literal["error", "unk"]
Decay = Literal["cosine", "linear", "none"]
Precision = Literal["fp32", "bf16", "fp16", "auto"]
OPTIMIZERS: tuple[str, ...] = typing.get_args(Optimizer)
INITS: tuple[str, ...] = typing.get_args(Init)
TOKENIZERS: tuple[str, ...] = typing.get_args(Tokenizer)
DECAYS: tuple[str, ...] = typing.get_args(Decay)
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
# Where the cells' names come from: the registry, read when the CLI is built (cells register on import).
MAX_WINDOW = 65536  # --window: each local head of each layer keeps this many keys and values per stream
CELL_CHOICES: Callable[[], Sequence[str]] = registry.names

# The groups of `rnnlab train --help`, in the order shown.
PANELS = ("Data", "Model", "Optimisation", "Budget", "Output", "Hardware")


def opt(default: Any, help: str, panel: str, **cli: Any) -> Any:
    """A config field together with its command-line option, so each option is described in one place.

    `help` and `panel` (one of PANELS) are its `--help` entry. `cli` may hold `flag` (the option's name where it
    is not the field's, e.g. "--val-file"; None: no option, the value is derived), `argument` (True: positional),
    `choices` (a function returning the allowed values, for a set known only at run time), `parse` (a function
    reading the command-line text, e.g. a duration) and `metavar`.
    """
    if panel not in PANELS:
        raise ValueError(f"unknown panel {panel!r}; choose one of: {', '.join(PANELS)}")
    metadata = {"help": help, "panel": panel, **cli}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def max_time_opt() -> Any:
    """The `--max-time` field of a training config: seconds, which the command line reads as a duration."""
    help = "Stop after this much wall time, validation included, e.g. 90s, 20m, 1.5h (0: no limit)."
    return opt(0.0, help, "Budget", parse=parse_duration, metavar="DURATION")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr)?\s*$")


def parse_duration(text: str | float) -> float:
    """'90s' -> 90.0, '20m' -> 1200.0, '1.5h' -> 5400.0, '45' -> 45.0 (seconds); a number is already seconds
    (an option's default goes through the parser too)."""
    if isinstance(text, (int, float)):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise RnnlabError(f"cannot read duration {text!r}; use e.g. 90s, 20m or 1.5h")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}[unit]


@dataclass
class ModelConfig:
    """The network's shape. Changing any of these makes a different model (so `--resume` refuses)."""

    vocab_size: int = opt(0, "V, set from the tokenizer (see --vocab-size).", "Model", flag=None)
    cell: str = opt("lstm", "The recurrent cell (README: Cells).", "Model", choices=CELL_CHOICES)
    layers: int = opt(2, "Recurrent layers L.", "Model")
    hidden: int = opt(256, "Hidden units H per layer.", "Model")
    embed: int = opt(64, "Embedding size D (0: one-hot input, D = V).", "Model")
    dropout: float = opt(0.0, "Dropout between layers and before the output.", "Model")
    variational: bool = opt(False, "Locked dropout: one mask per sequence instead of per step.", "Model")
    residual: bool = opt(False, "Residual connections y = H(x) + x between layers of equal size.", "Model")
    highway: bool = opt(False, "Highway gates y = g⊙H(x) + (1 − g)⊙x between layers of equal size.", "Model")
    layer_norm: bool = opt(False, "LayerNorm on each layer's output.", "Model")
    learn_init: bool = opt(False, "Learn the initial hidden state instead of zeros.", "Model")
    peephole: bool = opt(False, "lstm only: peephole connections from the cell state to the gates.", "Model")
    factors: int = opt(0, "mrnn only: factors of the 3-way weights (0: = hidden).", "Model")
    window: int = opt(64, "mlstm-local only: tokens its attention heads see, itself included.", "Model")
    tie_weights: bool = opt(
        False, "The output layer reuses the embedding matrix (through a projection H -> D when D != H).", "Model"
    )

    def validate(self) -> None:
        """Raise RnnlabError for impossible values."""
        check_types(self)
        if self.vocab_size < 0:
            raise RnnlabError(f"vocab_size must be >= 0, got {self.vocab_size}")
        spec = registry.get(self.cell)
        _positive("--layers", self.layers)
        _positive("--hidden", self.hidden)
        if self.factors < 0:
            raise RnnlabError(f"--factors must be >= 0, got {self.factors}")
        if not 1 <= self.window <= MAX_WINDOW:
            raise RnnlabError(f"--window must be in [1, {MAX_WINDOW}], got {self.window}")
        if self.learn_init and not spec.per_unit:
            parts = ", ".join(spec.state)
            raise RnnlabError(f"--learn-init does not apply to --cell {self.cell}: its state ({parts}) is not per unit")
        for name in sorted({o for s in registry.cells() for o in s.options} - set(spec.options)):  # other cells'
            if getattr(self, name) != getattr(ModelConfig, name):
                takers = " | ".join(s.name for s in registry.cells() if name in s.options)
                raise RnnlabError(f"--{name.replace('_', '-')} applies to --cell {takers} only")
        if spec.same_width and self.embed != self.hidden:
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

    inputs: list[str] = opt(
        [], "Files, directories or globs (default: Python's stdlib source).", "Data", argument=True, metavar="INPUT"
    )
    val_files: list[str] = opt(
        [],
        "Validation file(s); repeat for more (default: --val-fraction of each file).",
        "Data",
        flag="--val-file",
        metavar="FILE",
    )
    val_fraction: float = opt(0.05, "Fraction held out from the end of each training file.", "Data")
    tokenizer: Tokenizer = opt("char", "Characters seen in training, raw bytes, words or BPE pieces.", "Data")
    unknown: Unknown = opt("error", "char: unseen characters are an error, or become <unk>.", "Data")
    vocab_size_limit: int = opt(
        0, "word: most frequent pieces kept, <unk> included (0: all); bpe: size (0: 1000).", "Data", flag="--vocab-size"
    )
    min_count: int = opt(1, "word: pieces seen fewer times in training become <unk>.", "Data")
    lowercase: bool = opt(False, "word, bpe: lower-case the text before tokenizing.", "Data")
    word_pattern: str = opt(WORD_PATTERN, "word: regex for the pieces (text between matches too).", "Data")
    batch_size: int = opt(32, "Parallel streams N.", "Data")
    seq_len: int = opt(128, "Truncated-BPTT length T (hidden state carried chunk to chunk).", "Data")
    optimizer: Optimizer = opt("adam", "nesterov: SGD with Nesterov momentum; hf: Hessian-free.", "Optimisation")
    lr: float = opt(2e-3, "Peak learning rate (a cell's registered maximum applies unless given).", "Optimisation")
    momentum: float = opt(0.9, "Momentum for sgd, nesterov and rmsprop.", "Optimisation")
    weight_decay: float = opt(0.0, "The optimiser's weight decay.", "Optimisation")
    init: Init = opt("default", "esn: W_hh at --spectral-radius, input weights N(0, 1/D), biases 0.", "Optimisation")
    spectral_radius: float = opt(1.1, "--init esn: spectral radius of W_hh (Sutskever et al. 2013).", "Optimisation")
    hf_cg_iters: int = opt(50, "--optimizer hf: most conjugate-gradient iterations per update.", "Optimisation")
    hf_curvature_fraction: float = opt(
        0.25, "--optimizer hf: share of the N streams for curvature products.", "Optimisation"
    )
    hf_structural_damping: float = opt(
        0.3, "--optimizer hf: structural damping μ (Martens & Sutskever 2011).", "Optimisation"
    )
    betas: tuple[float, float] = opt((0.9, 0.999), "adam, adamw: decay rates of the two moments.", "Optimisation")
    reset_prob: float = opt(0.02, "Chance per stream and chunk of restarting from the initial state.", "Optimisation")
    clip_norm: float = opt(5.0, "Clip the global gradient norm (0: off).", "Optimisation")
    clip_value: float = opt(0.0, "Clip each gradient element to ±value (0: off).", "Optimisation")
    warmup: int = opt(100, "Steps of linear warmup.", "Optimisation")
    decay: Decay = opt("cosine", "Learning-rate decay over the step and/or time budget.", "Optimisation")
    min_lr_ratio: float = opt(0.1, "Final learning rate as a fraction of --lr.", "Optimisation")
    max_steps: int = opt(0, "Stop after this many steps (0: no limit).", "Budget")
    max_time: float = max_time_opt()
    epochs: float = opt(0.0, "Stop after this many passes over the data (0: no limit).", "Budget")
    eval_every: int = opt(500, "Validate every this many steps.", "Output")
    eval_tokens: int = opt(250_000, "Validate on at most this many tokens (0: all of the split).", "Output")
    checkpoint_every: int = opt(500, "Checkpoint every this many steps.", "Output")
    log_every: int = opt(10, "Log metrics every this many steps.", "Output")
    sample_every: int = opt(
        -1, "Print a short sample every N steps (-1: at each validation on a terminal; 0: never).", "Output"
    )
    patience: int = opt(0, "Stop after this many evaluations without improvement (0: off).", "Budget")
    seed: int = opt(1337, "Seed of the weights, the data order, dropout and resets.", "Optimisation")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N.", "Hardware", metavar="DEVICE")
    precision: Precision = opt(
        "fp32", "Autocast (auto: bf16 where the hardware has it, else fp32; fp16 scales the loss).", "Hardware"
    )
    compile: bool = opt(False, "torch.compile the model for the training step (falls back if unavailable).", "Hardware")

    def validate(self) -> None:
        """Raise RnnlabError for impossible values."""
        check_types(self)
        if not 0 <= self.seed < 2**63:
            raise RnnlabError(f"--seed must be in [0, 2**63), got {self.seed}")
        if self.precision not in PRECISIONS:
            raise RnnlabError(
                f"--precision must be {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}, got {self.precision!r}"
            )
        if self.tokenizer not in TOKENIZERS:
            raise RnnlabError(f"unknown tokenizer {self.tokenizer!r}; choose one of: {', '.join(TOKENIZERS)}")
        if self.unknown not in typing.get_args(Unknown):
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
        if self.sample_every < -1:
            raise RnnlabError(f"--sample-every must be >= -1, got {self.sample_every}")
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
    # The default recipe of benchmarks/quality.py (README: Model quality): at equal wall time a GRU learned
    # faster than an LSTM of as many parameters (2x256) on both corpora's training tails; for the LSTM, 2x256
    # beat 2x320 and 3x256, and seq_len 64 with lr 3e-3 beat 128 with 2e-3; bf16 autocast is faster where the
    # CPU has native bf16, with no loss at equal steps (benchmarks/results/recipe.md, quality.md).
    "small": {
        "cell": "gru",
        "layers": 2,
        "hidden": 300,
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


def build_configs(preset: str | None = None, **options: Any) -> tuple[ModelConfig, TrainConfig]:
    """Split keyword options into (ModelConfig, TrainConfig): preset values first, then `options`.

    Options that are None are treated as "not given"; a cell registered with a `max_lr` gets at most that
    learning rate unless `lr` is given. Unknown names are an error, so a typo in the
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
    max_lr = registry.get(cell).max_lr if cell in registry.names() else None  # an unknown cell: validate says so
    if "lr" not in given and max_lr is not None and lr > max_lr:
        values["lr"] = max_lr
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


def option_fields(*configs: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The fields of the `configs` dataclasses that a user sets (not those with `flag=None`), each with its type."""
    hints = {name: kind for cls in configs for name, kind in typing.get_type_hints(cls).items()}
    return [
        (f, hints[f.name]) for cls in configs for f in dataclasses.fields(cls) if f.metadata.get("flag", "") is not None
    ]


F = typing.TypeVar("F", bound=Callable[..., Any])


def with_options(function: F) -> F:
    """Decorator for a function that takes the config fields as `**options` (e.g. `rnnlab.train`): give it a
    signature naming each of them, typed and None ("not given"), so help(), notebooks and editors that read
    signatures list and complete them. Calls are unchanged; build_configs still rejects an unknown name."""
    signature = inspect.signature(function)
    own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    options = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind | None)
        for f, kind in option_fields(ModelConfig, TrainConfig)
        if f.name not in {p.name for p in own}
    ]
    function.__signature__ = signature.replace(parameters=[*own, *options])  # type: ignore[attr-defined]
    return function


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
        elif kind is str or typing.get_origin(kind) is Literal:  # validate() names a Literal's choices
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
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(typing.get_args(kind))
    return "a list of " + _type_name(typing.get_args(kind)[0]).removeprefix("a ").removeprefix("n ") + "s"


def _positive(flag: str, value: int) -> None:
    if value <= 0:
        raise RnnlabError(f"{flag} must be > 0, got {value}")
