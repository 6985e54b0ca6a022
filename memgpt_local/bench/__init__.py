"""Benchmarks and test campaigns on top of the engine: scripted models, fault campaigns."""
