#!/usr/bin/env bash
# Builds llama.cpp's own server (the engine inside Ollama) and converts the bundled
# all-MiniLM-L6-v2 to GGUF, for the llama.cpp phase of bench/rowbyrow.py. Run on demand, never in
# CI: ~15 minutes on two cores. The sources are llama-cpp-python's sdist from PyPI (its vendored
# llama.cpp, the same tree Ollama-style servers build), so the package registry is all it needs.
#
#   bash bench/llama_cpp.sh            # into ${SQLEMBED_BENCH_DIR:-~/.cache/sqlembed/bench}/llama.cpp
#   PYTHON=.venv/bin/python bash bench/llama_cpp.sh
set -euo pipefail
PYTHON=${PYTHON:-python}
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
OUT=${SQLEMBED_BENCH_DIR:-$HOME/.cache/sqlembed/bench}/llama.cpp
SRC=$OUT/src
mkdir -p "$OUT"
if [ ! -d "$SRC/llama_cpp_python-$VERSION" ]; then
  mkdir -p "$SRC"
  "$PYTHON" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$SRC"
  tar xzf "$SRC/llama_cpp_python-$VERSION.tar.gz" -C "$SRC"
fi
LLAMA=$SRC/llama_cpp_python-$VERSION/vendor/llama.cpp
if [ ! -x "$OUT/llama-server" ]; then
  # Native kernels for this CPU, as Ollama's CPU runners pick the best variant at run time.
  cmake -S "$LLAMA" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON
  cmake --build "$OUT/build" --target llama-server -j "$(nproc)"
  cp "$OUT/build/bin/llama-server" "$OUT/llama-server"
fi
MODEL=$("$PYTHON" -c 'from sqlembed.engine.build import default_source; print(default_source())')
for outtype in f32 f16 q8_0; do
  if [ ! -f "$OUT/all-minilm-l6-v2-$outtype.gguf" ]; then
    # The converter needs the gguf package vendored beside it; torch and transformers come with
    # sqlembed's dev extra.
    PYTHONPATH="$LLAMA/gguf-py" HF_HUB_OFFLINE=1 "$PYTHON" "$LLAMA/convert_hf_to_gguf.py" "$MODEL" \
      --outfile "$OUT/all-minilm-l6-v2-$outtype.gguf" --outtype "$outtype"
  fi
done
echo "llama.cpp server and GGUF model in $OUT"
