"""Models built from the recurrent stack: the language model (and, later, seq2seq, classifiers)."""
