"""Recurrent building blocks: cells and the stacks that run them over time.

The modules that define cells are imported here, so every cell is registered (nn/registry.py) before anything
under `rnnlab.nn` can ask for one."""

from rnnlab.nn import cells, local, mlstm, scan

__all__ = ["cells", "local", "mlstm", "scan"]
