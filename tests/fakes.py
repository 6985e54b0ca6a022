"""Fakes for fast control-flow tests: the scripted model runtime and the hashing embedder."""

from memgpt_local.bench.scripted import HashingEmbedder, ScriptedRuntime, call

FakeRuntime = ScriptedRuntime

__all__ = ["FakeRuntime", "HashingEmbedder", "call"]
