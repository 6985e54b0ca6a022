"""What the machine offers llama.cpp: its build's GPU support, the devices it sees, cores and
memory (for `memgpt-local doctor`)."""

import ctypes
import os
from pathlib import Path


def _ggml() -> ctypes.CDLL:
    """libggml of the installed llama-cpp-python, its device functions typed."""
    import llama_cpp
    import llama_cpp.llama_cpp  # noqa: F401 - loads the backends first

    ggml = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml.so"))
    for name, result, args in [
            ("ggml_backend_dev_count", ctypes.c_size_t, []),
            ("ggml_backend_dev_get", ctypes.c_void_p, [ctypes.c_size_t]),
            ("ggml_backend_dev_name", ctypes.c_char_p, [ctypes.c_void_p]),
            ("ggml_backend_dev_description", ctypes.c_char_p, [ctypes.c_void_p]),
            ("ggml_backend_dev_memory", None, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                              ctypes.POINTER(ctypes.c_size_t)])]:
        function = getattr(ggml, name)
        function.restype, function.argtypes = result, args
    return ggml


def devices() -> list[dict]:
    """The compute devices llama.cpp sees (the CPU, and GPUs where it was built for them)."""
    try:
        ggml = _ggml()
    except (OSError, AttributeError):
        return []
    found = []
    for index in range(ggml.ggml_backend_dev_count()):
        device = ggml.ggml_backend_dev_get(index)
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        ggml.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
        found.append({"name": ggml.ggml_backend_dev_name(device).decode(),
                      "description": ggml.ggml_backend_dev_description(device).decode(),
                      "memory_free_bytes": free.value, "memory_total_bytes": total.value})
    return found


def hardware_report() -> dict:
    """llama-cpp-python's version and GPU support, its devices, the cores and the memory."""
    import llama_cpp

    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return {"llama_cpp_python": llama_cpp.__version__,
            "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
            "system_info": llama_cpp.llama_print_system_info().decode().strip(" |"),
            "devices": devices(), "cpu_cores": os.cpu_count(),
            "memory_bytes": pages * page_size}


def gpu_free_bytes() -> int:
    """Free memory on the GPUs llama.cpp can offload to (0 on a CPU build or without one)."""
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        return 0
    return sum(d["memory_free_bytes"] for d in devices() if not d["name"].upper().startswith("CPU"))
