#!/usr/bin/env bash
# The GPU part of issue 7 in one go, on a machine with an NVIDIA GPU (bench/gpu/README.md): the
# provider really used, the engine alone on the GPU (with and without IOBinding), the GPU tests,
# and the serving harness through the CUDA provider at n = 1, 64 and 1024; and issue 33's training
# check: torchrun on every GPU (DDP over nccl) with bf16 and fp16 autocast, a few steps each.
#
#   bash bench/gpu/check.sh                      # on the device machine, from the repo root
#   DEVICE=cpu PYTHON=/usr/bin/python3 bash bench/gpu/check.sh   # rehearsal (pack.sh --python 3.11)
#
# Installs the parts bench/gpu/pack.sh made (from .gpu/ or /tmp/ganserve-parts) into
# /tmp/ganserve-site once (NO_INSTALL=1: PYTHON's own packages and the system's wrk instead).
# Everything lands in $OUT (default gpu-out/): check.log, nvidia-smi.txt, gpu-tests.txt, raw.json,
# serve.json, serve.txt, ddp-bf16.txt, ddp-fp16.txt, ddp-tests.txt. Each step has its own time
# limit; a failed step does not stop the rest.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
OUT=${OUT:-$REPO/gpu-out}
mkdir -p "$OUT"
# The device's Python is a venv that holds PyTorch and CUDA 13's wheels (and pytest, onnx).
PY=${PYTHON:-$( [ -x /opt/torch/.venv/bin/python ] && echo /opt/torch/.venv/bin/python || echo python3 )}
DEVICE=${DEVICE:-cuda}
SITE=/tmp/ganserve-site  # a fresh target folder: never one of PYTHON's own
UNPACKED=/tmp/ganserve-pack
SECONDS_PER_POINT=${SECONDS_PER_POINT:-3}
# One deadline for the whole check (a device call runs 600 s at most): each step gets its own
# limit or what is left, and is interrupted with SIGINT, so bench/serve.py stops its servers.
BUDGET_S=${BUDGET_S:-420}
[[ $BUDGET_S =~ ^[0-9]+$ ]] || { echo "BUDGET_S must be whole seconds, got '$BUDGET_S'" >&2; exit 2; }
DEADLINE=$(( $(date +%s) + BUDGET_S ))
exec > >(tee -a "$OUT/check.log") 2>&1
step() { echo; echo "== $(date +%T) $*"; }
limit() { local left=$(( DEADLINE - $(date +%s) )); echo $(( left < $1 ? left : $1 )); }
run_for() {  # run_for SECONDS command...: within the deadline, or skipped when it has passed
  local s; s=$(limit "$1"); shift
  if [ "$s" -lt 10 ]; then echo "skipped: the check's time (BUDGET_S) is spent" >&2; return 124; fi
  timeout -s INT -k 20 "$s" "$@"
}
failed=()

if [ "${NO_INSTALL:-0}" = 1 ]; then
  echo "NO_INSTALL=1: $PY's own packages and wrk from PATH"
else
  if [ ! -f "$SITE/.installed" ]; then
    step "parts"
    parts=""
    for d in "$REPO/.gpu" /tmp/ganserve-parts; do
      [ -f "$d/manifest.sha256" ] && parts=$d && break
    done
    [ -n "$parts" ] || { echo "no manifest.sha256 in .gpu/ or /tmp/ganserve-parts: run bench/gpu/pack.sh, carry its files"; exit 3; }
    # Parts carried in earlier calls may sit in either folder.
    for f in $(awk '{print $2}' "$parts/manifest.sha256"); do
      [ -f "$parts/$f" ] || { [ -f "/tmp/ganserve-parts/$f" ] && cp "/tmp/ganserve-parts/$f" "$parts/"; }
    done
    if ! (cd "$parts" && sha256sum --quiet -c manifest.sha256); then
      echo "parts missing or damaged (above): carry them again (the machine may have been given back in between)"
      exit 3
    fi
    packed_for=$(awk '{print $2}' "$parts/python" 2>/dev/null)
    running=$($PY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ "$packed_for" != "$running" ]; then
      echo "the pack holds wheels for Python ${packed_for:-?}, $PY is $running: bench/gpu/pack.sh --python $running"
      exit 3
    fi
    step "install into $SITE (wheels for Python $packed_for)"
    rm -rf "$UNPACKED" "$SITE"
    mkdir -p "$UNPACKED"
    (cd "$parts" && cat $(awk '{print $2}' manifest.sha256)) | tar -xf - -C "$UNPACKED" || exit 3
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$UNPACKED"/wheels/*.whl || exit 3
    touch "$SITE/.installed"
  fi
  export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
  # wrk with its own LuaJIT, first on PATH, without changing the loader path of anything else.
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s/wrk/lib exec %s/wrk/bin/wrk.real "$@"\n' "$UNPACKED" "$UNPACKED" > "$UNPACKED/wrk/bin/wrk"
  chmod +x "$UNPACKED/wrk/bin/wrk"
  export PATH=$UNPACKED/wrk/bin:$PATH
fi
# CUDA 13 and cuDNN 9: onnxruntime.preload_dlls() looks beside onnxruntime (our target folder),
# then on the loader's path; the device's own Python holds them in its nvidia-* wheels.
NVLIBS=$($PY - <<'EOF'
import glob, site
dirs = [d for s in site.getsitepackages() for d in sorted(glob.glob(f"{s}/nvidia/*/lib"))]
print(":".join(dirs))
EOF
)
[ -n "$NVLIBS" ] && export LD_LIBRARY_PATH=$NVLIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ -z "$NVLIBS" ] && [ "$DEVICE" = cuda ]; then
  echo "warning: $PY has no nvidia/*/lib folders: CUDA 13 and cuDNN 9 must come from the system (PYTHON=...)"
fi
echo "python: $($PY --version); wrk: $(command -v wrk || echo none); nvidia libs: ${NVLIBS:-none}"

step "nvidia-smi"
{ nvidia-smi || echo "no nvidia-smi"; } > "$OUT/nvidia-smi.txt" 2>&1
head -15 "$OUT/nvidia-smi.txt"

step "which provider a session really gets"
run_for 120 $PY - "$DEVICE" <<'EOF' || failed+=(provider)
import sys
from pathlib import Path
from service.runtime.providers import choose_providers
providers, note = choose_providers(sys.argv[1], Path("models/mnist/generator.onnx"), 1)
print(providers, "-", note)
EOF

step "GPU tests (pytest -m gpu)"
if $PY -c "import pytest, onnx" 2>/dev/null; then
  run_for 180 $PY -m pytest -p no:cacheprovider -m gpu -rs -q tests/service/runtime/test_gpu.py > "$OUT/gpu-tests.txt" 2>&1 \
    || failed+=(gpu-tests)
  tail -8 "$OUT/gpu-tests.txt"
else
  echo "skipped: this python has no pytest or onnx" | tee "$OUT/gpu-tests.txt"
fi

step "the engine alone ($DEVICE): session.run, and through an IOBinding"
if run_for 150 $PY bench/raw_engine.py --device "$DEVICE" --iobinding --no-stages --json \
     --seconds "$SECONDS_PER_POINT" > "$OUT/raw.json"; then
  $PY -c "import json, sys; d = json.load(open(sys.argv[1])); print('provider', d['provider'], 'threads', d['threads']); \
[print(n, {k: round(v, 1) for k, v in row.items()}) for n, row in d['samples_per_s'].items()]" "$OUT/raw.json"
else
  failed+=(raw-engine)
  rm -f "$OUT/raw.json"  # half a measurement is no limit to compare against
fi

step "the server through $DEVICE under wrk (quick grid, floors; no baseline)"
raw_args=()
[ -s "$OUT/raw.json" ] && raw_args=(--raw-json "$OUT/raw.json")
GANSERVE_DEVICE=$DEVICE run_for 300 $PY bench/serve.py --quick --no-baseline --models-dir models \
  --seconds "$SECONDS_PER_POINT" "${raw_args[@]}" --out "$OUT/serve.json" > "$OUT/serve.txt" 2>&1 || failed+=(serve)
tr '\r' '\n' < "$OUT/serve.txt" | grep -v -E '^\s*$|point/s' | tail -40  # without tqdm's redraws

# Last, so that it never takes the serving steps' time: it gets what BUDGET_S leaves (BUDGET_S=560
# leaves it ~2 minutes after a full serving check).
step "training: torchrun on every GPU (DDP, $([ "$DEVICE" = cuda ] && echo nccl || echo gloo)) with mixed precision"
# The style preset's networks, R1 (lazy), DiffAugment and G's average, on 128 random 32x32 PNGs
# (the folder dataset needs only Pillow: no font, no scikit-learn), at the preset's global batch.
if $PY -c "import torch, safetensors, tqdm, PIL, numpy" 2>/dev/null; then
  if [ "$DEVICE" = cuda ]; then
    NPROC=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU'); [ "$NPROC" -ge 1 ] || NPROC=1
    PRECISIONS="bf16 fp16"
  else
    NPROC=2; PRECISIONS="bf16"  # the rehearsal: gloo, and fp16 is CUDA's only
  fi
  $PY - "$OUT/ddp-images" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
for i in range(128):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(out / f"{i:03d}.png")
EOF
  for precision in $PRECISIONS; do
    rm -rf "$OUT/ddp-$precision"
    if run_for 150 $PY -m torch.distributed.run --standalone --nproc-per-node="$NPROC" -m training train \
         --preset emoji-style --out "$OUT/ddp-$precision" --max-steps 30 --precision "$precision" --quiet \
         --set device="$DEVICE" --set dataset=folder --set dataset_options.path="$OUT/ddp-images" \
         --set dataset_options.size=32 --set conditional=false > "$OUT/ddp-$precision.txt" 2>&1; then
      # rank 0's own clock: the steps only, waits for the other ranks included
      $PY - "$OUT/ddp-$precision/metrics.jsonl" "$NPROC process(es), $precision" <<'EOF'
import json, sys
row = [json.loads(line) for line in open(sys.argv[1])][-1]
rate = row["step"] / row["wall_time_s"]
print(f"{sys.argv[2]}: {row['step']} steps in {row['wall_time_s']:.2f} s, {rate:.1f} steps/s, loss_d {row['loss_d']:.3f}")
EOF
    else
      failed+=("ddp-$precision")
    fi
    grep -E "global batch|error" "$OUT/ddp-$precision.txt" | head -5
  done
  if $PY -c "import pytest, hypothesis" 2>/dev/null; then
    run_for 180 $PY -m pytest -p no:cacheprovider -m gpu -rs -q tests/training/test_distributed.py \
      > "$OUT/ddp-tests.txt" 2>&1 || failed+=(ddp-tests)
    tail -5 "$OUT/ddp-tests.txt"
  else
    echo "the training GPU tests skipped: this python has no pytest or hypothesis" | tee "$OUT/ddp-tests.txt"
  fi
else
  echo "skipped: $PY lacks safetensors, tqdm or Pillow (bench/gpu/pack.sh packs them)"
fi

step "done; failed steps: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
