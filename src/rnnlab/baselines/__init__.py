"""The models recurrent networks are compared with: n-gram, HMM and feed-forward window language models, and
linear dynamical systems and autoregressive models for real-valued series."""
