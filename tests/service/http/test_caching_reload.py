"""ETags across model reloads (http/caching.py): the card's digest lives on the loaded model
(LoadedModel.card_digest), so a replaced or unloaded model's card goes with it, and the tag
follows the card that serves now."""

from __future__ import annotations

import gc
import hashlib
import shutil
import weakref

from service.runtime.engine import Engine
from service.runtime.registry import Registry
from tests.service.model_factory import install, make_model


def test_a_replaced_or_unloaded_model_leaves_no_card_behind(app, tmp_path):  # app: settings before schemas
    from service.core.schemas import SampleRequest
    from service.http.caching import etag

    live, stage = tmp_path / "models", tmp_path / "stage"
    for k in range(2):
        make_model(stage / f"v{k}", "m", z_dim=4, seed=k)
    install(stage / "v0" / "m", live / "m")
    engine = Engine(live, "cpu", default_model="m")
    registry = Registry(engine, "poll", 1.0)
    req = SampleRequest(seed=1, n=2, model="m")

    v0 = engine.get("m")
    first = etag(v0, req, 4)
    assert v0.card_digest == hashlib.sha256(v0.card.model_dump_json().encode()).hexdigest()
    assert etag(v0, req, 4) == first
    old_card = weakref.ref(v0.card)

    install(stage / "v1" / "m", live / "m")  # a new version: other files, so another card
    registry.scan()
    v1 = engine.get("m")
    assert v1 is not v0 and v1.card.version != v0.card.version
    assert etag(v1, req, 4) != first  # the card is all that differs between the two tags' parts
    del v0
    gc.collect()
    assert old_card() is None, "the replaced model's card is still held"

    new_card = weakref.ref(v1.card)
    del v1
    shutil.rmtree(live / "m")  # poll mode: a removed folder is unloaded
    registry.scan()
    assert "m" not in engine.models
    gc.collect()
    assert new_card() is None, "the unloaded model's card is still held"
