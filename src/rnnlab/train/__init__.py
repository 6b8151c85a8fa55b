"""Training: the loop, its optimisers and schedules, and checkpoints for exact resume."""
