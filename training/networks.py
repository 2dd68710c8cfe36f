"""The networks: G maps z to a sample, D maps a sample to a realness *logit*.

Each family has a config dataclass; a checkpoint stores that config, so export and evaluation
rebuild the exact networks from the checkpoint alone. Sigmoid is never applied to D's output here:
the losses (training/losses.py) and the service take logits.

Families:
- `mlp`: the paper's MNIST pair (goodfeli/adversarial, mnist.yaml) and small MLPs for 1-D/2-D toys.
  G: z -> ReLU layers -> sigmoid / tanh / linear.  D: maxout layers (pieces > 1) or LeakyReLU
  layers (pieces == 1), dropout on the input and the hidden layers -> one logit.
- `dcgan`: Radford et al. (2016) convolutional pair for 32x32 or 64x64 images, 1 or 3 channels.
- `style`: a style-based G (mapping z [, c] -> w, synthesis ws -> image; StyleGAN2) and its
  residual D, for square images whose side is a power of 2 (training/style/).

Conditional pairs p(x | c) (the paper's section 7; `classes` > 0): G and D take an int64 class index
c (N,) as a second input. G sees c as Mirza & Osindero (2014) do, one-hot joined to z. D sees it
either the same way (`d_condition="concat"`: one-hot joined to its input, after the input dropout, or
as constant channels for dcgan) or through a projection head (Miyato & Koyama 2018,
`"projection"`): logit = psi(h) + <embed(c), h> on D's last features h. docs/DESIGN.md says which the
presets use and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
from torch import nn

Activation = Literal["sigmoid", "tanh", "linear"]
OUTPUT_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


@dataclass(frozen=True)
class LatentConfig:
    dim: int = 100
    # The paper's code draws U(-sqrt 3, sqrt 3): zero mean, unit variance, like N(0, 1).
    distribution: Literal["uniform", "normal"] = "uniform"

    @property
    def bounds(self) -> Optional[tuple[float, float]]:
        return (-math.sqrt(3.0), math.sqrt(3.0)) if self.distribution == "uniform" else None


@dataclass(frozen=True)
class NetworkConfig:
    """Both networks of one GAN. `sample_shape` is one sample: [C, H, W] for images, [d] for vectors."""

    family: Literal["mlp", "dcgan", "style"] = "mlp"
    sample_shape: tuple[int, ...] = (1, 28, 28)
    latent: LatentConfig = field(default_factory=LatentConfig)
    output: Activation = "sigmoid"
    # mlp
    g_hidden: tuple[int, ...] = (1200, 1200)
    d_hidden: tuple[int, ...] = (240, 240)
    d_pieces: int = 5  # maxout pieces per unit; 1 means LeakyReLU units
    d_input_dropout: float = 0.2
    d_hidden_dropout: float = 0.5
    # Uniform init U(-a, a) as in the paper's code; None keeps PyTorch's default init. With the
    # paper's SGD recipe PyTorch's default init lets D win outright, hence these defaults.
    g_init_scale: Optional[float] = 0.05
    d_init_scale: Optional[float] = 0.005
    # Packing (PacGAN, Lin et al. 2018): D judges d_pack samples at once, concatenated (mlp: along
    # the features; dcgan: along the channels), and gives one logit per pack. A pack of fakes with
    # too little variety is easy to tell apart, which penalises mode collapse. 1 = the paper's D.
    d_pack: int = 1
    # dcgan
    g_width: int = 64
    d_width: int = 64
    # Conditional networks: the number of classes c (0 = unconditional, the paper's pair), and how
    # D takes c (see the module docstring). G always takes c one-hot beside z.
    classes: int = 0
    d_condition: Literal["concat", "projection"] = "concat"
    # style: the width of w, the mapping MLP's depth, G's channels per resolution from 4x4 up, D's
    # from 4x4 up, the share of training samples whose styles mix two z, D's minibatch-std group.
    w_dim: int = 256
    mapping_layers: int = 4
    style_channels: tuple[int, ...] = (256, 256, 128, 64)
    style_d_channels: tuple[int, ...] = (256, 256, 128, 64)
    style_mixing: float = 0.9
    mbstd_group: int = 4

    def __post_init__(self) -> None:
        if self.family == "style":
            side = self.sample_shape[-1]
            if len(self.sample_shape) != 3 or self.sample_shape[1] != side or side not in (8, 16, 32, 64, 128):
                raise ValueError("style: sample_shape must be [C, S, S] with S in 8, 16, 32, 64, 128")
            if not 0.0 <= self.style_mixing <= 1.0:
                raise ValueError("style_mixing must be in [0, 1]")
            if self.d_pack != 1:
                raise ValueError("d_pack: the style D has minibatch standard deviation instead")
        if self.family == "dcgan":
            if len(self.sample_shape) != 3 or self.sample_shape[1:] not in ((32, 32), (64, 64)):
                raise ValueError("dcgan: sample_shape must be [C, 32, 32] or [C, 64, 64]")
            if self.sample_shape[0] not in (1, 3):
                raise ValueError("dcgan: 1 or 3 channels")
        if self.d_pieces < 1:
            raise ValueError("d_pieces must be >= 1")
        if self.d_pack < 1:
            raise ValueError("d_pack must be >= 1")
        if self.classes < 0 or self.classes == 1:
            raise ValueError("classes must be 0 (unconditional) or >= 2")
        if self.classes and self.d_pack != 1:
            raise ValueError("d_pack: packing is for unconditional D only (a pack would mix classes)")
        for name in ("d_input_dropout", "d_hidden_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1)")

    @property
    def sample_size(self) -> int:
        return math.prod(self.sample_shape)

    @property
    def value_range(self) -> Optional[tuple[float, float]]:
        return OUTPUT_RANGES.get(self.output)

    @property
    def conditional(self) -> bool:
        return self.classes > 0


def sample_latent(cfg: LatentConfig, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """n latents of shape (n, dim), drawn with `generator` for reproducibility."""
    if cfg.distribution == "normal":
        return torch.randn(n, cfg.dim, generator=generator)
    low, high = cfg.bounds
    return torch.rand(n, cfg.dim, generator=generator) * (high - low) + low


def _activation(name: Activation) -> nn.Module:
    return {"sigmoid": nn.Sigmoid(), "tanh": nn.Tanh(), "linear": nn.Identity()}[name]


def _uniform_init(module: nn.Module, scale: Optional[float]) -> None:
    if scale is None:
        return
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -scale, scale)
            nn.init.zeros_(m.bias)


class Maxout(nn.Module):
    """A linear layer of units x pieces outputs, max over each unit's pieces (Goodfellow et al. 2013)."""

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)  # (N, units * pieces)
        return y.view(-1, self.units, self.pieces).amax(dim=2)  # (N, units)


class OneHot(nn.Module):
    """c int64 (N,) -> float32 (N, classes), as a row lookup in a fixed identity matrix (an ONNX
    Gather: no weights to learn, nothing in the state dict)."""

    def __init__(self, classes: int):
        super().__init__()
        self.register_buffer("eye", torch.eye(classes), persistent=False)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.eye[c]  # (N, classes)


def _need_class(module: nn.Module, c: Optional[torch.Tensor]) -> None:
    if c is None:
        raise ValueError(f"{type(module).__name__}: a conditional network needs the class c")


class MLPGenerator(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.sample_shape = tuple(cfg.sample_shape)
        self.onehot = OneHot(cfg.classes) if cfg.conditional else None
        layers: list[nn.Module] = []
        width = cfg.latent.dim + cfg.classes  # z, then c one-hot (Mirza & Osindero)
        for h in cfg.g_hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, cfg.sample_size)
        self.act = _activation(cfg.output)
        self.output = cfg.output
        _uniform_init(self, cfg.g_init_scale)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.onehot is not None:
            _need_class(self, c)
            z = torch.cat([z, self.onehot(c)], dim=1)  # (N, z_dim + classes)
        x = self.act(self.out(self.body(z)))  # (N, prod(sample_shape))
        return x.view(-1, *self.sample_shape)  # (N, *sample_shape)

    @torch.no_grad()
    def init_output_bias(self, data_mean: torch.Tensor) -> None:
        """Start G's output at the data's mean (the paper's code does this for MNIST pixels)."""
        m = data_mean.reshape(-1).to(self.out.bias.dtype)
        if self.output == "sigmoid":
            m = torch.logit(m.clamp(1e-3, 1 - 1e-3))
        elif self.output == "tanh":
            m = torch.atanh(m.clamp(-1 + 1e-3, 1 - 1e-3))
        self.out.bias.copy_(m)


def _check_packs(x: torch.Tensor, pack: int) -> None:
    if x.shape[0] % pack:
        raise ValueError(f"d_pack: D packs {pack} samples, but got a batch of {x.shape[0]}")


class MLPDiscriminator(nn.Module):
    """x (N, *sample_shape) -> (N / d_pack, 1) logits: each run of d_pack consecutive samples is one pack."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.pack = cfg.d_pack
        self.condition = cfg.d_condition if cfg.conditional else None
        width = cfg.sample_size * cfg.d_pack
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(cfg.d_input_dropout)]
        if self.condition == "concat":
            # c joins x after the input dropout, so D never loses sight of the class.
            self.input = nn.Sequential(*layers)
            self.onehot = OneHot(cfg.classes)
            layers, width = [], width + cfg.classes
        for h in cfg.d_hidden:
            if cfg.d_pieces > 1:
                layers.append(Maxout(width, h, cfg.d_pieces))
            else:
                layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            layers.append(nn.Dropout(cfg.d_hidden_dropout))
            width = h
        if self.condition is None:
            layers.append(nn.Linear(width, 1))
            self.net = nn.Sequential(*layers)
        else:
            self.body = nn.Sequential(*layers)  # (N, width) features h
            self.head = nn.Linear(width, 1)  # psi(h)
            if self.condition == "projection":
                self.embed = nn.Embedding(cfg.classes, width)
        _uniform_init(self, cfg.d_init_scale)
        if self.condition == "projection":
            nn.init.zeros_(self.embed.weight)  # D starts as the unconditional one; c's effect is learnt

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.condition == "concat":
            _need_class(self, c)
            h = self.body(torch.cat([self.input(x), self.onehot(c)], dim=1))  # (N, width)
            return self.head(h)  # (N, 1) logits
        if self.condition == "projection":
            _need_class(self, c)
            h = self.body(x)  # (N, width)
            return self.head(h) + (self.embed(c) * h).sum(dim=1, keepdim=True)  # (N, 1): psi(h) + <e_c, h>
        if self.pack == 1:  # the unpacked D exactly as before (same graph, same checkpoints)
            return self.net(x)  # (N, 1) logits
        _check_packs(x, self.pack)
        return self.net(x.reshape(x.shape[0] // self.pack, -1))  # (N / pack, 1): rows are concatenated samples

    def copies(self, x: torch.Tensor) -> torch.Tensor:
        """Each sample as the pack of d_pack copies of itself: (N, *sample_shape) -> (N * d_pack, ...)
        laid out so that forward() packs copy with copy."""
        return x.flatten(1).repeat(1, self.pack).reshape(x.shape[0] * self.pack, -1)


def _dcgan_init(module: nn.Module) -> None:
    # Radford et al.: all weights N(0, 0.02); batch-norm scales N(1, 0.02).
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        channels, size, _ = cfg.sample_shape
        self.sample_shape = tuple(cfg.sample_shape)
        self.onehot = OneHot(cfg.classes) if cfg.conditional else None
        ups = int(math.log2(size // 4))  # 4 -> size by stride-2 transposed convs
        w = cfg.g_width * 2 ** (ups - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.latent.dim + cfg.classes, w, 4, 1, 0, bias=False),  # (N, w, 4, 4)
            nn.BatchNorm2d(w),
            nn.ReLU(True),
        ]
        for _ in range(ups - 1):
            layers += [nn.ConvTranspose2d(w, w // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w // 2), nn.ReLU(True)]
            w //= 2
        layers += [nn.ConvTranspose2d(w, channels, 4, 2, 1, bias=False), _activation(cfg.output)]
        self.net = nn.Sequential(*layers)
        _dcgan_init(self)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.onehot is not None:
            _need_class(self, c)
            z = torch.cat([z, self.onehot(c)], dim=1)  # (N, z_dim + classes)
        return self.net(z[:, :, None, None])  # (N, C, H, W)


class DCGANDiscriminator(nn.Module):
    """x (N, C, H, W) -> (N / d_pack, 1) logits; a pack stacks d_pack images along the channels."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        channels, size, _ = cfg.sample_shape
        self.pack = cfg.d_pack
        self.condition = cfg.d_condition if cfg.conditional else None
        extra = cfg.classes if self.condition == "concat" else 0  # c one-hot as constant input channels
        downs = int(math.log2(size // 4))
        w = cfg.d_width
        layers: list[nn.Module] = [
            nn.Conv2d(channels * cfg.d_pack + extra, w, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True),
        ]
        for _ in range(downs - 1):
            layers += [nn.Conv2d(w, w * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 2), nn.LeakyReLU(0.2, True)]
            w *= 2
        head = [nn.Conv2d(w, 1, 4, 1, 0, bias=False), nn.Flatten()]  # (N, 1)
        if self.condition is None:
            self.net = nn.Sequential(*layers, *head)
        else:
            self.onehot = OneHot(cfg.classes)
            self.body = nn.Sequential(*layers)  # (N, w, 4, 4) features h
            self.head = nn.Sequential(*head)
            if self.condition == "projection":
                self.embed = nn.Embedding(cfg.classes, w)
        _dcgan_init(self)
        if self.condition == "projection":
            nn.init.zeros_(self.embed.weight)

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.condition is not None:
            _need_class(self, c)
        if self.condition == "concat":
            n, _, h, w = x.shape
            planes = self.onehot(c)[:, :, None, None].expand(n, -1, h, w)  # (N, classes, H, W)
            return self.head(self.body(torch.cat([x, planes], dim=1)))  # (N, 1) logits
        if self.condition == "projection":
            f = self.body(x)  # (N, w, 4, 4)
            return self.head(f) + (self.embed(c)[:, :, None, None] * f).sum(dim=(1, 2, 3))[:, None]  # (N, 1)
        if self.pack == 1:
            return self.net(x)  # (N, 1) logits
        _check_packs(x, self.pack)
        n, c, h, w = x.shape
        return self.net(x.reshape(n // self.pack, c * self.pack, h, w))  # (N / pack, 1)

    def copies(self, x: torch.Tensor) -> torch.Tensor:
        """Each image as the pack of d_pack copies of itself, laid out so that forward() packs them."""
        n, c, h, w = x.shape
        return x.repeat(1, self.pack, 1, 1).reshape(n * self.pack, c, h, w)


class PerSampleDiscriminator(nn.Module):
    """A packed D as a per-sample one: x (N, *sample_shape) -> (N, 1), each sample scored as the pack
    of d_pack copies of itself. What export ships for d_pack > 1, so the service's contract (one
    realness per sample) holds whatever the packing."""

    def __init__(self, packed: nn.Module):
        super().__init__()
        self.packed = packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.packed(self.packed.copies(x))  # (N, 1)


def build_generator(cfg: NetworkConfig) -> nn.Module:
    if cfg.family == "style":
        from training.style.generator import StyleGenerator

        return StyleGenerator(cfg)
    return {"mlp": MLPGenerator, "dcgan": DCGANGenerator}[cfg.family](cfg)


def build_discriminator(cfg: NetworkConfig) -> nn.Module:
    if cfg.family == "style":
        from training.style.discriminator import ResidualDiscriminator

        return ResidualDiscriminator(cfg)
    return {"mlp": MLPDiscriminator, "dcgan": DCGANDiscriminator}[cfg.family](cfg)
