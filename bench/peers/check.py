"""Is a peer's answer right? POST "n samples from a seed", decode the answer, and compare it with
onnxruntime run here, in the project's venv, on ganserve's own latents for that seed
(service/core/latents.py, the model card's latent). The bench calls this before timing a peer.

    .venv/bin/python bench/peers/check.py --peer litserve --url http://127.0.0.1:8001 --n 3 --seed 7
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # bench/peers and the repo

from catalog import Peer, peer  # noqa: E402

from models.card import read_card  # noqa: E402
from service.core.latents import draw, generator  # noqa: E402

ATOL = 1e-5


class CheckError(AssertionError):
    """A peer answered wrong (or not at all)."""


@functools.cache
def _session(model_path: str):
    import onnxruntime as ort

    return ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])


def expected(model_path: Path, n: int, seed: int) -> np.ndarray:
    """The generator's output on ganserve's latents for `seed`: (n, *sample_shape) float32."""
    latent = read_card(Path(model_path).parent).latent
    session = _session(str(Path(model_path).resolve()))
    z = draw(generator(seed), latent, n)
    return session.run(None, {session.get_inputs()[0].name: z})[0]


def check_answer(p: Peer | str, url: str, model_path: Path, n: int, seed: int, timeout_s: float = 120) -> float:
    """POST the request to the peer at `url`, decode its answer and compare it with `expected`:
    raises CheckError with what differs (status, shape, dtype or values beyond atol 1e-5). Returns
    the largest absolute difference."""
    p = peer(p) if isinstance(p, str) else p
    model_path = Path(model_path)
    body = p.body(n, seed, model_path.parent.name)
    try:
        response = httpx.post(url + p.path, json=body, timeout=timeout_s)
    except httpx.HTTPError as e:
        raise CheckError(f"{p.name}: POST {url}{p.path} failed: {e!r}") from e
    if response.status_code != 200:
        raise CheckError(
            f"{p.name}: POST {p.path} (n={n}, seed={seed}) answered {response.status_code}: {response.text[:300]}"
        )
    try:
        got = p.decode(response.content, response.headers)
    except Exception as e:
        raise CheckError(
            f"{p.name}: could not decode its {p.answer} answer ({len(response.content)} bytes): {e!r}"
        ) from e
    want = expected(model_path, n, seed)
    if got.shape != want.shape:
        raise CheckError(f"{p.name}: n={n}, seed={seed}: shape {list(got.shape)}, expected {list(want.shape)}")
    if got.dtype != want.dtype:
        raise CheckError(f"{p.name}: n={n}, seed={seed}: dtype {got.dtype}, expected {want.dtype}")
    diff = float(np.max(np.abs(got.astype(np.float64) - want))) if n else 0.0
    if not diff <= ATOL:
        worst = np.unravel_index(int(np.argmax(np.abs(got.astype(np.float64) - want))), want.shape)
        raise CheckError(
            f"{p.name}: n={n}, seed={seed}: values differ from onnxruntime on ganserve's latents by up to "
            f"{diff:.3g} (atol {ATOL}); first worst at {tuple(int(i) for i in worst)}: "
            f"{got[worst]!r} vs {want[worst]!r}"
        )
    return diff


def check_mixed(p: Peer | str, url: str, model_path: Path, requests: list[tuple[int, int]]) -> list[str | float]:
    """Send requests asking for different n at once, so a batching peer is likely to put them in
    one batch: each answer checked as by check_answer. One entry per request: the largest
    difference, or the error's message."""
    results: list[str | float] = [""] * len(requests)

    def one(i: int, n: int, seed: int) -> None:
        try:
            results[i] = check_answer(p, url, model_path, n, seed)
        except CheckError as e:
            results[i] = str(e)

    threads = [threading.Thread(target=one, args=(i, n, s)) for i, (n, s) in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", required=True)
    parser.add_argument("--url", required=True, help="the running peer, e.g. http://127.0.0.1:8001")
    parser.add_argument("--model", type=Path, default=HERE.parents[1] / "models" / "mnist" / "generator.onnx")
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    diff = check_answer(args.peer, args.url.rstrip("/"), args.model, args.n, args.seed)
    print(f"{args.peer}: n={args.n} seed={args.seed}: equal to onnxruntime (max |diff| {diff:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
