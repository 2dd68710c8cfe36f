#!/usr/bin/env bash
# One virtual environment per peer server (bench/peers/README.md), outside the project's .venv:
# the peers do not fit one environment with each other or with ganserve (PyTriton needs numpy < 2;
# mlserver 1.7.1 needs fastapi < 0.116 while kserve 0.21 needs starlette >= 1.3.1).
#
#   bash bench/peers/setup.sh                 # every peer
#   bash bench/peers/setup.sh litserve kserve # only these
#
# Envs live in ${GANSERVE_PEERS_HOME:-$HOME/.cache/ganserve-peers}/<peer>. An env whose stamp file
# (.ganserve-peer, the requirement line it was built from) matches is complete and skipped; any other
# is rebuilt from scratch. One peer's failed install is reported with its log and the others go on;
# the exit status is non-zero if any failed. Each env also gets install.json (versions, install
# seconds, size) and requirements.lock (pip freeze). The project's .venv is never touched.
set -uo pipefail

ROOT=${GANSERVE_PEERS_HOME:-$HOME/.cache/ganserve-peers}
PYTHON=${GANSERVE_PEERS_PYTHON:-$(command -v python3.11 || command -v python3)}
ALL=(fastapi litserve rayserve pytriton kserve mlserver torchserve)

# Every peer runs the project's engine, onnxruntime-gpu 1.31.1 (CPU provider here); all their pins
# allow it, PyTriton's numpy < 2 included. Frameworks at the versions checked in shared/STACK.md.
requirements() {
    case $1 in
        fastapi) echo "fastapi[standard]==0.165.0 uvicorn[standard]==0.55.0 numpy==2.4.6 onnxruntime-gpu==1.31.1" ;;
        litserve) echo "litserve==0.2.19 numpy==2.4.6 onnxruntime-gpu==1.31.1" ;;
        rayserve) echo "ray[serve]==2.60.0 numpy==2.4.6 onnxruntime-gpu==1.31.1" ;;
        pytriton) echo "nvidia-pytriton==0.7.0 numpy==1.26.4 onnxruntime-gpu==1.31.1" ;;
        kserve) echo "kserve==0.21.0 numpy==2.4.6 onnxruntime-gpu==1.31.1" ;;
        # uvloop 0.22+ kills MLServer 1.7.1's inference worker at start (shared/STACK.md).
        mlserver) echo "mlserver==1.7.1 uvloop==0.21.0 numpy==2.4.6 onnxruntime-gpu==1.31.1" ;;
        # TorchServe imports torch and yaml in its worker (it does not declare pyyaml); torch 2.13.0 is the
        # project's (a CPU wheel where pip finds one, else the CUDA build from PyPI).
        torchserve) echo "torchserve==0.12.0 torch-model-archiver==0.12.0 torch==2.13.0 pyyaml==6.0.4 numpy==2.4.6 onnxruntime-gpu==1.31.1" ;;
        *) return 1 ;;
    esac
}

# The distribution whose version names the peer.
framework() {
    case $1 in
        fastapi) echo fastapi ;; litserve) echo litserve ;; rayserve) echo ray ;; pytriton) echo nvidia-pytriton ;;
        kserve) echo kserve ;; mlserver) echo mlserver ;; torchserve) echo torchserve ;;
    esac
}

install_peer() {
    local peer=$1 env="$ROOT/$1" spec start log
    spec=$(requirements "$peer")
    if [[ -f "$env/.ganserve-peer" && "$(cat "$env/.ganserve-peer")" == "$spec" ]]; then
        echo "$peer: ready in $env (skipped)"
        return 0
    fi
    log="$ROOT/$peer.install.log"
    echo "$peer: installing $spec into $env (log: $log)"
    start=$(date +%s)
    rm -rf "$env"
    # shellcheck disable=SC2086  # the spec is a list of requirement words
    if ! {
        echo "+ $PYTHON -m venv $env" && "$PYTHON" -m venv "$env" &&
            echo "+ pip install --upgrade pip" && "$env/bin/python" -m pip install --upgrade pip &&
            echo "+ pip install $spec" && "$env/bin/python" -m pip install $spec
    } >"$log" 2>&1; then
        echo "ERROR: $peer failed to install; last lines of $log:" >&2
        grep -v 'is ignored: it is neither a file nor a directory' "$log" | tail -n 15 | sed 's/^/    /' >&2
        rm -rf "$env"
        return 1
    fi
    "$env/bin/python" -m pip check >>"$log" 2>&1 || echo "$peer: note: pip check reports conflicts (see $log)"
    "$env/bin/python" -m pip freeze >"$env/requirements.lock" 2>/dev/null
    local seconds=$(($(date +%s) - start))
    "$env/bin/python" - "$peer" "$(framework "$peer")" "$seconds" "$spec" "$env" >"$env/install.json" <<'EOF'
import json, os, sys
from importlib.metadata import PackageNotFoundError, version

peer, dist, seconds, spec, env = sys.argv[1:]
def v(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(env) for f in fs if not os.path.islink(os.path.join(d, f)))
ort = next(((n, v(n)) for n in ("onnxruntime-gpu", "onnxruntime") if v(n)), (None, None))
print(json.dumps({"peer": peer, "framework": dist, "version": v(dist), "onnxruntime": f"{ort[0]} {ort[1]}",
                  "numpy": v("numpy"), "install_seconds": int(seconds), "bytes": size, "requirements": spec}))
EOF
    echo "$spec" >"$env/.ganserve-peer"
    echo "$peer: installed in ${seconds} s, $(du -sh "$env" | cut -f1): $(cat "$env/install.json")"
}

main() {
    local peers=("$@") failed=()
    [[ ${#peers[@]} -eq 0 ]] && peers=("${ALL[@]}")
    for peer in "${peers[@]}"; do
        if ! requirements "$peer" >/dev/null; then
            echo "ERROR: unknown peer '$peer' (known: ${ALL[*]})" >&2
            return 2
        fi
    done
    mkdir -p "$ROOT"
    for peer in "${peers[@]}"; do
        install_peer "$peer" || failed+=("$peer")
    done
    if [[ ${#failed[@]} -gt 0 ]]; then
        echo "ERROR: not installed: ${failed[*]} (the others are ready in $ROOT)" >&2
        return 1
    fi
    echo "peers ready in $ROOT: ${peers[*]}"
}

main "$@"
