"""Large answers computed and sent block by block: the graph runs block k + 1 while block k is
on its way to the client.

Served whole, an n = 1024 npy answer pays its steps in series: the latents, the graph over all
rows, the encoding, then the transfer, while the cores that ran the graph wait on the socket. In
blocks, the graph runs during the transfer, and a request holds two blocks, not its whole answer
twice. Off by default (GANSERVE_STREAM_BLOCK_ROWS=0): on the CPU hosts measured the transfer was
short beside the graph and four runs of 256 rows cost more than one of 1024
(docs/PERFORMANCE.md#finding-block-stream); a GPU, where the bytes bind, is where to measure it
next (bench/gpu/README.md). Only formats whose bytes are the
samples' rows in order stream this way (the format table's `block_stream`: npy), and only
requests whose samples are known up front to be kept (no filter: rejection needs every draw's
realness before the first byte).

Failures: the first block runs before the status line is sent, so a model that fails at all
fails with its usual JSON error. A failure in a later block can no longer change the 200: the
connection is closed short of its Content-Length, which every HTTP client reports as an
incomplete body, never as a complete answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Optional

import numpy as np

from service.core import formats
from service.runtime.model import LoadedModel
from service.settings import get_settings


def block_rows() -> int:
    """Rows per block (GANSERVE_STREAM_BLOCK_ROWS; 0: off, the default)."""
    return get_settings().stream_block_rows


def streams(fmt: str, n: int, filtered: bool) -> bool:
    """Whether a request of n samples in `fmt` is computed and sent block by block: at least two
    blocks' worth (fewer overlap nothing), unfiltered, in a format whose body is its rows."""
    rows = block_rows()
    return rows > 0 and n >= 2 * rows and not filtered and formats.get(fmt).block_stream


async def blocks(model: LoadedModel, z: np.ndarray, c: Optional[np.ndarray], rows: int) -> AsyncIterator[np.ndarray]:
    """G's samples of z (n, z_dim) [with classes c (n,)] in blocks of `rows`, in order. Each
    block's graph run starts before the previous block is handed on, so the run and whatever the
    caller does with that block (send it) overlap. Closed early (the client went away), the run in
    flight is abandoned: its result is dropped."""

    def run(start: int) -> asyncio.Future:
        part_c = None if c is None else c[start : start + rows]
        return asyncio.ensure_future(model.generate_async(z[start : start + rows], part_c))

    pending: Optional[asyncio.Future] = run(0)
    try:
        for start in range(0, len(z), rows):
            x = await pending
            pending = run(start + rows) if start + rows < len(z) else None
            yield x
    finally:
        if pending is not None:
            pending.cancel()
