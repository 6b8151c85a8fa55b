"""The sequence apps: classification, tagging, seq2seq, time series, captioning and VQA, with their CLI."""
