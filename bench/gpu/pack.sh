#!/usr/bin/env bash
# Packs what bench/gpu/check.sh needs on the device machine, which has no network and lacks
# onnxruntime-gpu, bentoml and wrk: every runtime wheel of the service (pinned by constraints.txt)
# for the device's Python, and Debian's wrk with its LuaJIT. One tar, cut into parts small enough
# that each travels in one device call beside the working tree (64 MiB per call in all).
#
#   bench/gpu/pack.sh                 # for the device (CPython 3.12), into .gpu/
#   bench/gpu/pack.sh --python 3.11   # for this machine's python3: rehearse check.sh here
#
# The onnxruntime-gpu wheel alone is 244 MiB, so the pack takes about seven calls: see
# bench/gpu/README.md for the calls and the order.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
PYVER=3.12
PART_MIB=""  # default: what fits beside the working tree in one call's 64 MiB, less 2 MiB
while [ $# -gt 0 ]; do
  case $1 in
    --python) PYVER=$2; shift 2 ;;
    --part-mib) PART_MIB=$2; shift 2 ;;
    *) echo "usage: $0 [--python 3.12] [--part-mib N]" >&2; exit 2 ;;
  esac
done

PACK=$REPO/.gpu
if [ -z "$PART_MIB" ]; then  # what travels with every call: tracked files and untracked, unignored ones
  tree_bytes=$(cd "$REPO" && { git ls-files -z; git ls-files -z --others --exclude-standard; } \
               | { xargs -0 -r stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
  PART_MIB=$(( 64 - 2 - (tree_bytes + 1048575) / 1048576 ))
  echo "working tree: $(( tree_bytes / 1048576 )) MiB; parts of $PART_MIB MiB"
fi
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/wheels" "$STAGE/wrk/bin" "$STAGE/wrk/lib"

# The service's runtime requirements (pyproject's [project] dependencies) plus what the bench
# imports beside them, each at the version constraints.txt pins; torch is not needed (the
# service is torch-free and the bench measures the shipped models/; the training check uses the
# device's own torch), but safetensors is: training writes its checkpoints with it.
mapfile -t REQUIREMENTS < <(python3 - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print("\n".join(d.split(";")[0].strip() for d in deps + ["psutil", "safetensors"]))
EOF
)
grep -v -E '^(torch|#|$)' "$REPO/constraints.txt" > "$STAGE/constraints.txt"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux_2_5_x86_64 manylinux1_x86_64; do PLATFORMS+=(--platform "$p"); done
# pip evaluates the requirements' environment markers (uvloop's sys_platform) on this machine's
# Python, not the target's; the pins hold for both 3.11 and 3.12.
echo "downloading wheels for CPython $PYVER: ${REQUIREMENTS[*]}"
python3 -m pip download -q --only-binary=:all: --python-version "$PYVER" --implementation cp "${PLATFORMS[@]}" \
  -c "$STAGE/constraints.txt" -d "$STAGE/wheels" "${REQUIREMENTS[@]}"

# wrk: the device image has none. Its own LuaJIT travels with it; libssl/libcrypto 3 are the
# system's there. check.sh puts a wrapper first on PATH that points the loader at lib/.
WRK=$(command -v wrk) || { echo "error: wrk is not installed here: apt-get install -y wrk" >&2; exit 2; }
cp "$WRK" "$STAGE/wrk/bin/wrk.real"
cp -L "$(ldd "$WRK" | awk '/libluajit/ {print $3}')" "$STAGE/wrk/lib/"

rm -rf "$PACK"
mkdir -p "$PACK"
tar -cf - -C "$STAGE" wheels wrk | split -b "${PART_MIB}M" -d -a 2 - "$PACK/part."
(cd "$PACK" && sha256sum part.* > manifest.sha256)
echo "python $PYVER" > "$PACK/python"

echo
echo "packed $(ls "$STAGE/wheels" | wc -l) wheels and wrk into $(ls "$PACK"/part.* | wc -l) parts in $PACK:"
(cd "$PACK" && ls -l part.* | awk '{printf "  %s %.1f MiB\n", $NF, $5 / 1048576}')
echo "each device call carries one part (carry: [\".gpu/part.NN\"]); the last carries manifest.sha256"
echo "and python too and runs bench/gpu/check.sh (bench/gpu/README.md)."
