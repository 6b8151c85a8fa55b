"""The echo-state-network app: reservoirs, ridge readouts, series files, the ESN experiments and CLI."""
