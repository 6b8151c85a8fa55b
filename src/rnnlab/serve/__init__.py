"""A local web playground: stream samples from trained models and look at their units."""
