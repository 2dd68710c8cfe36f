"""The dataset plan: seeds per shard and block, shard selections, and the spec's bounds (no model)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from service.datasets.plan import DatasetSpec, PlanError, child_seed, parse_part, parse_shards, shard_seed


def spec(**over) -> DatasetSpec:
    fields = dict(model="m", model_version="v", base_seed=7, samples=1050, shard_size=100, block_size=32)
    return DatasetSpec(**{**fields, **over})


def test_shard_seeds_depend_on_base_seed_and_index_only():
    small, large = spec(samples=300), spec(samples=10**9, shard_size=10**3)
    assert small.blocks(2)[0][0] == child_seed(shard_seed(7, 2), 0)
    assert [s for s, _ in small.blocks(2)] == [s for s, _ in large.blocks(2)[:4]]  # not the shard count
    seeds = {shard_seed(7, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**64 for s in seeds)
    assert shard_seed(7, 3) != shard_seed(8, 3)


def test_shard_seeds_are_pinned():
    """The same dataset on every machine, and in every later version: these numbers never change."""
    assert shard_seed(0, 0) == 8668861027912758289
    assert shard_seed(0, 1) == 4881901421217228719
    assert child_seed(2**64 - 1, 5) == int(
        np.random.SeedSequence(2**64 - 1, spawn_key=(5,)).generate_state(1, np.uint64)[0]
    )


def test_blocks_cover_the_shard_and_the_last_shard_holds_the_remainder():
    s = spec()
    assert s.num_shards == 11
    assert [n for _, n in s.blocks(0)] == [32, 32, 32, 4]
    assert s.shard_request(10) == 50 and sum(n for _, n in s.blocks(10)) == 50


def test_shard_lists_and_parts():
    assert parse_shards("17-20", 30) == [17, 18, 19, 20]
    assert parse_shards("5, 1-2,2", 30) == [1, 2, 5]
    assert parse_part("1/3", 8) == [1, 4, 7]
    parts = [parse_part(f"{i}/3", 8) for i in range(3)]
    assert sorted(sum(parts, [])) == list(range(8))
    assert parse_part("9/10", 5) == []  # more machines than shards: nothing to do


@pytest.mark.parametrize(
    "text, message",
    [
        ("20-17", "runs backwards"),
        ("30", "does not exist: this dataset has shards 0-29"),
        ("a-b", "not an index"),
    ],
)
def test_bad_shard_lists_name_the_option(text, message):
    with pytest.raises(PlanError, match=f"--shards: .*{message}"):
        parse_shards(text, 30)


@pytest.mark.parametrize("text", ["3/3", "1", "-1/2", "1/0"])
def test_bad_parts_name_the_option(text):
    with pytest.raises(PlanError, match="--shard: "):
        parse_part(text, 8)


@pytest.mark.parametrize(
    "over, field",
    [
        ({"shard_size": 0}, "shard_size"),
        ({"shard_size": 2_000_000}, "shard_size"),
        ({"samples": 0}, "samples"),
        ({"block_size": 0}, "block_size"),
        ({"base_seed": -1}, "base_seed"),
        ({"base_seed": 2**64}, "base_seed"),
        ({"filter": {"min_realness": 1.5}}, "min_realness"),
    ],
)
def test_out_of_range_values_are_refused(over, field):
    with pytest.raises(ValidationError, match=field):
        spec(**over)


def test_too_many_shards_and_float_pngs_are_refused():
    with pytest.raises(ValidationError, match="more than 1000000: use larger shards"):
        spec(samples=10**7, shard_size=1)
    with pytest.raises(ValidationError, match="dtype must be uint8"):
        spec(format="png", dtype="float32")


def test_the_draw_bound_belongs_to_filtered_datasets_only():
    assert spec(filter={"drs": True}, max_draws_factor=20).max_draws_factor == 20
    assert spec(filter={"min_realness": 0.5}, max_draws_factor=20) != spec(
        filter={"min_realness": 0.5}, max_draws_factor=30
    )
    with pytest.raises(ValidationError, match="max_draws_factor applies to filtered datasets only"):
        spec(max_draws_factor=20)
    with pytest.raises(ValidationError, match="max_draws_factor"):
        spec(filter={"drs": True}, max_draws_factor=0)
