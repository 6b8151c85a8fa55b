"""Toy and long-range tasks from the lectures: data generators, a standard protocol and its score, per module."""
