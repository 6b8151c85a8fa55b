"""A NumPy reference implementation of recurrent networks: float64, explicit loops, hand-written BPTT.

Nothing here imports torch. Each layer (`RNN`, `LSTM`, `GRU`) has a forward pass over time and a
backward pass through time written out step by step; `gradcheck` verifies every one by central
differences, and the tests verify them against PyTorch. `train` is Karpathy's min-char-rnn loop,
batched over N streams. Read it like a textbook: rnn.py first, then loss.py, model.py, train.py.
"""

from rnnlab.reference.gru import GRU
from rnnlab.reference.lstm import LSTM
from rnnlab.reference.model import CELLS, CharRNN
from rnnlab.reference.rnn import RNN
from rnnlab.reference.train import train

__all__ = ["CELLS", "GRU", "LSTM", "RNN", "CharRNN", "train"]
