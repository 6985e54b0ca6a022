"""The model layer: registry, GGUF files, chat templates, the llama.cpp runtime, KV snapshots and
constrained decoding. It knows nothing of memory or agents."""
