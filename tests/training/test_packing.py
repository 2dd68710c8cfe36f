"""Packing (PacGAN, network.d_pack): D judges packs of samples in training, and the exported D
still scores one sample at a time (the service's contract), through real onnxruntime sessions."""

from __future__ import annotations

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import load_file

from models.card import load_model_folder
from training.checkpoint import latest_checkpoint
from training.config import ConfigError
from training.export import export_model, pack_note
from training.networks import (
    LatentConfig,
    NetworkConfig,
    PerSampleDiscriminator,
    build_discriminator,
    build_generator,
    sample_latent,
)
from training.presets import resolve
from training.trainer import train

pytestmark = pytest.mark.usefixtures("torch_single_thread")
PACK = 4
PACKED = {
    "vector": NetworkConfig(
        sample_shape=(2,),
        output="linear",
        g_hidden=(32,),
        d_hidden=(32,),
        d_pieces=1,
        latent=LatentConfig(dim=4, distribution="normal"),
        g_init_scale=None,
        d_init_scale=None,
        d_pack=PACK,
    ),
    "mlp": NetworkConfig(
        sample_shape=(1, 28, 28), g_hidden=(32,), d_hidden=(16,), d_pieces=3, latent=LatentConfig(dim=8), d_pack=PACK
    ),
    "dcgan": NetworkConfig(
        family="dcgan",
        sample_shape=(3, 32, 32),
        g_width=8,
        d_width=8,
        latent=LatentConfig(dim=8, distribution="normal"),
        d_pack=PACK,
    ),
}
INFO = {
    "preset": "test",
    "config": {"note": "built in a test"},
    "steps": 3,
    "wall_time_s": 0.5,
    "seed": 7,
    "dataset": "none",
}
TINY = ["network.g_hidden=[16]", "network.d_hidden=[8]", "batch_size=64", "epochs=100"]


def test_batch_size_must_be_a_multiple_of_the_pack():
    with pytest.raises(ConfigError, match=r"^batch_size: 250 is not a multiple of network.d_pack \(4\)"):
        resolve("ring8-pac", ["batch_size=250"])
    with pytest.raises(ConfigError, match="d_pack must be >= 1"):
        resolve("ring8", ["network.d_pack=0"])


def test_pac_presets_are_the_vanilla_ones_with_packs_of_four():
    for name in ("ring8", "grid25"):
        vanilla, pac = resolve(name).to_dict(), resolve(f"{name}-pac").to_dict()
        assert pac["network"].pop("d_pack") == 4 and vanilla["network"].pop("d_pack") == 1
        assert pac.pop("preset") == f"{name}-pac" and vanilla.pop("preset") == name
        assert pac == vanilla


@pytest.mark.parametrize("family", list(PACKED))
def test_packed_d_gives_one_logit_per_pack_of_consecutive_samples(family):
    cfg = PACKED[family]
    torch.manual_seed(0)
    D = build_discriminator(cfg).eval()
    x = torch.rand(3 * PACK, *cfg.sample_shape)
    with torch.no_grad():
        logits = D(x)  # (3, 1)
        assert logits.shape == (3, 1)
        # A pack is its own samples only: changing the second pack leaves the first and third alone.
        y = x.clone()
        y[PACK : 2 * PACK] = torch.rand(PACK, *cfg.sample_shape)
        other = D(y)
        assert torch.equal(other[[0, 2]], logits[[0, 2]]) and not torch.equal(other[1], logits[1])
        # Every member of a pack counts (the point of packing): change only the last sample of pack 0.
        y = x.clone()
        y[PACK - 1] = torch.rand(*cfg.sample_shape)
        assert not torch.equal(D(y)[0], logits[0])
    with pytest.raises(ValueError, match="d_pack: D packs 4 samples, but got a batch of 6"):
        D(x[:6])


def test_unpacked_d_is_unchanged():
    cfg = PACKED["vector"]
    vanilla = NetworkConfig(**{**cfg.__dict__, "d_pack": 1})
    torch.manual_seed(0)
    D = build_discriminator(vanilla).eval()
    assert D.net[2].in_features == 2  # after Flatten and the input dropout
    x = torch.randn(5, 2)
    assert torch.equal(D(x), D.net(x))
    torch.manual_seed(0)
    assert build_discriminator(cfg).net[2].in_features == 2 * PACK


def test_pac_preset_trains_and_resumes_bit_for_bit(tmp_path):
    config = resolve("ring8-pac", TINY)
    straight = train(config, tmp_path / "straight", max_steps=20, progress=False)
    half = train(config, tmp_path / "resumed", max_steps=10, progress=False)
    train(config, half, max_steps=20, progress=False)
    a, b = latest_checkpoint(straight), latest_checkpoint(half)
    wa, wb = load_file(a / "discriminator.safetensors"), load_file(b / "discriminator.safetensors")
    assert wa["net.2.weight"].shape == (8, 2 * PACK)  # the first layer sees 4 concatenated 2-D samples
    for f in ("generator", "discriminator", "optim_d", "optim_g"):
        wa, wb = load_file(a / f"{f}.safetensors"), load_file(b / f"{f}.safetensors")
        assert all(torch.equal(wa[k], wb[k]) for k in wa), f


@pytest.fixture(scope="module")
def exported_packed(tmp_path_factory, torch_single_thread) -> dict:
    out = tmp_path_factory.mktemp("export-packed")
    result = {}
    for family, cfg in PACKED.items():
        torch.manual_seed(0)
        G, D = build_generator(cfg), build_discriminator(cfg)
        if family == "dcgan":  # non-trivial batch-norm statistics in D, as training would leave
            with torch.no_grad():
                D(torch.rand(32, *cfg.sample_shape))
        folder = export_model(
            cfg, G, D, name=f"p-{family}", out_dir=out, training_info=INFO, description="packed", progress=False
        )
        result[family] = (cfg, G, D, folder)
    return result


@pytest.mark.parametrize("family", list(PACKED))
def test_exported_packed_d_scores_each_sample_as_a_pack_of_its_copies(exported_packed, family):
    cfg, G, D, folder = exported_packed[family]
    d = ort.InferenceSession(str(folder / "discriminator.onnx"), providers=["CPUExecutionProvider"])
    G, D = copy.deepcopy(G).eval(), copy.deepcopy(D).eval()
    rng = torch.Generator().manual_seed(123)
    for batch in (1, 7, 256):
        with torch.no_grad():
            x = G(sample_latent(cfg.latent, batch, rng))  # (batch, *sample_shape)
            # The meaning, spelled out independently of the wrapper: sample i repeated PACK times.
            want = D(x.repeat_interleave(PACK, dim=0))  # (batch, 1)
            assert torch.equal(PerSampleDiscriminator(D)(x), want)
        got = d.run(None, {"x": x.numpy()})[0]
        assert got.shape == (batch, 1) and got.dtype == np.float32
        assert np.abs(got - want.numpy()).max() <= 1e-4


def test_packed_card_says_what_d_scores(exported_packed):
    cfg, _, _, folder = exported_packed["vector"]
    card, _ = load_model_folder(folder)
    assert card.description == f"packed {pack_note(PACK)}"
    assert "4 copies of itself" in card.description
    assert card.onnx.discriminator.inputs[0].shape == ["batch", 2]
    assert card.onnx.discriminator.outputs[0].shape == ["batch", 1]
