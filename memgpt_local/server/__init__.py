"""The HTTP server: agents, memory and messages over one engine, with an OpenAI-compatible
endpoint, for programs and other machines that talk to a workstation's agents."""
