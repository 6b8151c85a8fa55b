"""rnnlab: recurrent neural networks end to end.

import rnnlab
result = rnnlab.train(["novel.txt"], out="runs/novel", preset="small", max_time=600)
lm = rnnlab.LanguageModel.load(result.run_dir)
print(lm.generate(prime="It was", length=300, temperature=0.8))
print(lm.score(open("held_out.txt").read()).bits_per_char)
"""

from rnnlab._version import __version__
from rnnlab.config import PRESETS, ModelConfig, TrainConfig
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.train import TrainResult, train
from rnnlab.metrics import Score

__all__ = [
    "PRESETS",
    "LanguageModel",
    "ModelConfig",
    "RnnlabError",
    "Score",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "train",
]
