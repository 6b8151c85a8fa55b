"""Understanding trained models: interpretable cells, surprisal, gradient flow, memorisation, rendering."""
