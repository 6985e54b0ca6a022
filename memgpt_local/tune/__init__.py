"""Teaching a model its job: training data played by scripted policies through the real agent,
a LoRA adapter trained on it, and its conversion to a GGUF adapter llama.cpp loads."""
