"""The lectures' long-range experiments: tasks, models trained on them, and their CLI."""
