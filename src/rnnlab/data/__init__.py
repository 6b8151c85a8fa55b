"""From files on disk to batches of token ids: corpus -> tokenizer -> token store -> batch stream."""
