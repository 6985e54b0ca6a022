"""The agent layer, MemGPT's "operating system": the loop, main-context assembly, the queue
manager, the functions and reply streaming. It is handed a model runtime and stores by the
engine and never builds either."""
