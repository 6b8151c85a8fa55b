"""The language-model app: RNNLM and LanguageModel, sampling, scoring, dynamic evaluation, n-gram mixing,
compression, export, its trainer and its CLI."""
