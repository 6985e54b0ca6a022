"""The runtime on an inference server (llama.cpp's llama-server or vLLM): the same prompts and
constraint as in process, each server's HTTP dialect behind the CompletionServer protocol."""

from .runtime import RemoteRuntime, probe_server, server_for

__all__ = ["RemoteRuntime", "probe_server", "server_for"]
