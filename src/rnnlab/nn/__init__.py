"""Recurrent building blocks: cells and the stacks that run them over time."""
