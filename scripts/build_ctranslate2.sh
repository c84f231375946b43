#!/usr/bin/env bash
# Compile CTranslate2 with CUDA and cuDNN from a pinned release, and build its Python wheel.
# Dockerfile.gpu's `ctranslate2` stage runs this on linux/amd64 and linux/arm64: PyPI's aarch64
# wheels are CPU-only and its x86-64 wheels are CUDA 12 builds with machine code only up to
# sm_86 (every newer GPU JIT-compiles their PTX at first use). Built here against CUDA 13 with
# machine code for every architecture users run, no kernel is JIT-compiled on those GPUs.
#
#   scripts/build_ctranslate2.sh OUT_DIR
#   scripts/build_ctranslate2.sh --dry-run    # print the version and CMake options, build nothing
#
# Writes OUT_DIR/ctranslate2-<version>-*.whl; the library goes to $CTRANSLATE2_PREFIX/lib.
# Environment:
#   CTRANSLATE2_VERSION  release to build (default: the version constraints.txt locks)
#   CUDA_ARCHS           machine code, as compute capabilities without the dot
#                        (default "80 86 89 90 100 110 120 121")
#   PTX_ARCH             PTX kept for GPUs newer than the list (default 121)
#   CTRANSLATE2_PREFIX   install prefix of libctranslate2 (default /opt/ctranslate2)
#   JOBS                 parallel compile jobs (default: all cores)
set -euo pipefail

out=${1:?usage: $0 OUT_DIR | --dry-run}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=${CTRANSLATE2_VERSION:-$(sed -n 's/^ctranslate2==\([0-9.]*\).*/\1/p' "$repo/constraints.txt")}
read -r -a archs <<< "${CUDA_ARCHS:-80 86 89 90 100 110 120 121}"
ptx=${PTX_ARCH:-121}
prefix=${CTRANSLATE2_PREFIX:-/opt/ctranslate2}
jobs=${JOBS:-$(nproc)}
[[ -n $version ]] || { echo "build_ctranslate2: no ctranslate2 version in constraints.txt" >&2; exit 2; }

# CTranslate2's CMake uses the legacy FindCUDA: CMAKE_CUDA_ARCHITECTURES is silently ignored,
# and its cuda_select_nvcc_arch_flags accepts only one-digit majors ("8.0", not "12.1"). So
# CUDA_ARCH_LIST names the first architecture and every other one is a -gencode flag.
first=${archs[0]}
gencode=()
for arch in "${archs[@]:1}"; do
  gencode+=("-gencode=arch=compute_${arch},code=sm_${arch}")
done
gencode+=("-gencode=arch=compute_${ptx},code=compute_${ptx}")
nvcc_flags=$(IFS=';'; echo "${gencode[*]}")

options=(
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix"
  -DWITH_CUDA=ON -DWITH_CUDNN=ON -DCUDA_DYNAMIC_LOADING=ON
  -DWITH_MKL=OFF -DWITH_OPENBLAS=ON -DOPENMP_RUNTIME=COMP -DBUILD_CLI=OFF
  -DCUDA_ARCH_LIST="${first:0:-1}.${first: -1}" -DCUDA_NVCC_FLAGS="$nvcc_flags"
)
if [[ $out == --dry-run ]]; then
  echo "ctranslate2 v$version"
  printf '%s\n' "${options[@]}"
  exit 0
fi

src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git clone --quiet --depth 1 --branch "v$version" --recurse-submodules --shallow-submodules \
  https://github.com/OpenNMT/CTranslate2.git "$src"
cmake -S "$src" -B "$src/build" -Wno-dev "${options[@]}"
cmake --build "$src/build" --parallel "$jobs"
cmake --install "$src/build"

# The Python bindings link the library just installed (found through CTRANSLATE2_ROOT).
python3 -m venv "$src/venv"
"$src/venv/bin/pip" install -q -r "$src/python/install_requirements.txt" setuptools wheel
mkdir -p "$out"
CTRANSLATE2_ROOT=$prefix "$src/venv/bin/pip" wheel -q --no-deps --no-build-isolation -w "$out" "$src/python"

# Proof the build is what the image needs: it names cuBLAS and carries the requested code.
library=$(find "$prefix/lib" -name 'libctranslate2.so*' -type f | head -n 1)
grep -qa cublas "$library" || { echo "build_ctranslate2: $library has no CUDA" >&2; exit 1; }
if command -v cuobjdump >/dev/null; then
  echo "machine code in $library:"
  cuobjdump --list-elf "$library" | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' '
  echo
fi
ls "$out"/ctranslate2-"$version"-*.whl
