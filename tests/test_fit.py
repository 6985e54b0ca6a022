"""The memory estimate from a GGUF header (llm/fit.py): against llama.cpp's own buffer sizes
for both packaged models, and what it chooses (the window, the GPU layers) for a machine."""

import tracemalloc
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt_local.bench.fit_check import compare
from memgpt_local.llm.catalogue import ModelCatalogue
from memgpt_local.llm.fit import HEADROOM, auto_gpu_layers, estimate, fits, fitting_window
from memgpt_local.llm.gguf import model_shape
from memgpt_local.llm.gguf_header import read_header
from memgpt_local.llm.models import Registry

MIB = 1024 ** 2


@pytest.fixture(scope="module")
def shapes(registry):
    """Both packaged models' shapes, read from their headers."""
    return {alias: model_shape(registry.get(alias)) for alias in ("smollm2-135m", "gemma3-270m")}


@pytest.mark.parametrize(("alias", "n_ctx"), [("smollm2-135m", 2048), ("smollm2-135m", 8192),
                                              ("gemma3-270m", 2048), ("gemma3-270m", 8192),
                                              ("gemma3-270m", 32768)])
def test_the_estimate_is_within_15_percent_of_what_llama_cpp_allocates(registry, alias, n_ctx):
    """Weights, KV cache (Gemma's sliding-window layers at full size, as this runtime keeps
    them) and compute buffer, each within 15% of the sizes llama.cpp reports loading it."""
    compared = compare(registry.get(alias).locate(), n_ctx)
    assert compared["reported_mib"]["kv_cache"] > 0, compared
    for part, ratio in compared["ratio"].items():
        assert 0.85 <= ratio <= 1.15, (part, compared)


def test_gemmas_sliding_window_layers_are_counted(shapes):
    """Gemma 3 keeps 15 of its 18 layers on a 512-token sliding window; this runtime gives
    them a full-size cache (to reuse prefixes), so the KV cache grows with the whole window."""
    gemma = shapes["gemma3-270m"]
    assert gemma.sliding_window == 512 and gemma.layers == 18
    assert estimate(gemma, 32768).kv_cache == 18 * 32768 * 512 * 2


def test_reading_gemmas_metadata_holds_little_memory(registry):
    """The header's 262,144-token vocabulary is skipped over, not kept."""
    tracemalloc.start()
    try:
        header = read_header(registry.get("gemma3-270m").locate())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header.metadata["tokenizer.ggml.tokens"] == 262144
    assert peak < 50 * MIB, peak


@settings(max_examples=80, deadline=None)
@given(free=st.integers(0, 2 * 1024 ** 3), n_ctx=st.sampled_from([512, 2048, 8192, 32768]),
       alias=st.sampled_from(["smollm2-135m", "gemma3-270m"]))
def test_auto_gpu_layers_fill_the_gpu_and_never_overflow_it(shapes, free, n_ctx, alias):
    """`auto` takes as many layers as fit the GPU's free memory (with headroom): what it
    puts there fits, and one layer more would not (unless all are there)."""
    shape = shapes[alias]
    layers = auto_gpu_layers(shape, n_ctx, free)
    assert 0 <= layers <= shape.layers + 1
    if layers:
        assert estimate(shape, n_ctx, layers).on_gpu <= free * HEADROOM
    if layers <= shape.layers:
        assert estimate(shape, n_ctx, layers + 1).on_gpu > free * HEADROOM


@settings(max_examples=60, deadline=None)
@given(ram=st.integers(0, 4 * 1024 ** 3), alias=st.sampled_from(["smollm2-135m", "gemma3-270m"]))
def test_the_window_chosen_is_the_largest_that_fits(shapes, ram, alias):
    """The window chosen fits the free memory and is at most the trained context; twice it
    would not fit, or is past what the model was trained for."""
    shape = shapes[alias]
    window = fitting_window(shape, ram)
    if window == 0:
        assert not fits(shape, 512, ram)
        return
    assert fits(shape, window, ram) and window <= shape.trained_context
    assert window * 2 > shape.trained_context or not fits(shape, window * 2, ram)


def test_auto_layers_follow_the_gpu_memory_given(registry, tmp_path):
    """A models.toml entry with n_gpu_layers = "auto" is placed when it loads from the GPU
    memory there is: none without one, all with plenty, some in between."""
    spec = registry.get("gemma3-270m")
    shape = model_shape(spec)
    auto = replace(spec, n_gpu_layers="auto")

    def placed(budget: int) -> int:
        catalogue = ModelCatalogue(tmp_path / "models.toml", Registry.load, lambda: None, budget)
        return catalogue.placed(auto, 8192).n_gpu_layers

    assert placed(0) == 0
    assert placed(64 * 1024 ** 3) == shape.layers + 1
    middle = estimate(shape, 8192, 9).on_gpu / HEADROOM
    assert 0 < placed(int(middle)) < shape.layers
