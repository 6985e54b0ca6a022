#!/usr/bin/env bash
# Sourced by setup.sh and build-llama-server.sh: the one place that chooses how llama.cpp is built.
# llama.cpp's build options for this machine. Where the CPU has AMX, ggml's AMX kernels (chosen
# by a native build) crash at the first batched evaluation wherever the OS does not grant the
# tile state (seen in a container: a segfault evaluating a 300-token prompt), so the build
# names this CPU's other instruction sets instead of -march=native.
llama_cmake_args() {
  local flags args="-DLLAVA_BUILD=OFF"
  flags="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
  case "$flags" in *amx_tile*) ;; *) echo "$args"; return ;; esac
  args+=" -DGGML_NATIVE=OFF"
  for pair in avx:AVX avx2:AVX2 bmi2:BMI2 fma:FMA f16c:F16C avx512f:AVX512 \
      avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16 avx_vnni:AVX_VNNI; do
    case " $flags " in *" ${pair%%:*} "*) args+=" -DGGML_${pair#*:}=ON" ;; esac
  done
  echo "$args"
}
