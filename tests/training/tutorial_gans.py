"""GANs written the way popular tutorial code writes them, NOT with the project's classes: what
users bring to `pack`. Tiny widths keep the tests fast; the structure is the tutorials'.

- `DCGANGenerator` / `DCGANDiscriminator`: pytorch/examples' dcgan (ConvTranspose2d, BatchNorm2d,
  ReLU, Tanh; 3x64x64 from a (100, 1, 1) latent; D of Conv2d and LeakyReLU ending in a Sigmoid and
  `.view(-1, 1).squeeze(1)`).
- `CondGenerator` / `CondDiscriminator`: eriklindernoren/PyTorch-GAN's cgan (an nn.Embedding of
  the label concatenated to the noise; G(noise, labels), D(img, labels)), here with a sigmoid
  output in [0, 1] and a D that returns logits.
- `MLPGenerator`: a plain generator with a sigmoid output (RGB 6x6 in [0, 1]), exported by the test
  with torch's TorchScript exporter (`dynamo=False`), with no discriminator.

Factories take no arguments, as `pack --torch-generator module:factory` calls them.
"""

from __future__ import annotations

import torch
from torch import nn

NZ, NGF, NDF, NC = 100, 4, 4, 3  # pytorch/examples' names; widths 4 instead of 64
N_CLASSES, COND_LATENT, COND_SHAPE = 3, 16, (3, 8, 8)


class DCGANGenerator(nn.Module):
    def __init__(self, ngpu: int = 1):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(NGF * 8),
            nn.ReLU(True),  # 4x4
            nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NGF * 4),
            nn.ReLU(True),  # 8x8
            nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NGF * 2),
            nn.ReLU(True),  # 16x16
            nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NGF),
            nn.ReLU(True),  # 32x32
            nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False),
            nn.Tanh(),  # 64x64
        )

    def forward(self, input):
        return self.main(input)


class DCGANDiscriminator(nn.Module):
    def __init__(self, ngpu: int = 1):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            nn.Conv2d(NC, NDF, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),  # 32x32
            nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NDF * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NDF * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NDF * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        output = self.main(input)
        return output.view(-1, 1).squeeze(1)


def weights_init(m: nn.Module) -> None:
    """pytorch/examples' init, but wider (std 0.3) so that untrained samples span tanh's range."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.3)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class CondGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.img_shape = COND_SHAPE
        self.label_emb = nn.Embedding(N_CLASSES, N_CLASSES)
        self.model = nn.Sequential(
            nn.Linear(COND_LATENT + N_CLASSES, 32),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(32, 3 * 8 * 8),
            nn.Sigmoid(),
        )

    def forward(self, noise, labels):
        gen_input = torch.cat((self.label_emb(labels), noise), -1)
        img = self.model(gen_input)
        return img.view(img.size(0), *self.img_shape)


class CondDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.label_embedding = nn.Embedding(N_CLASSES, N_CLASSES)
        self.model = nn.Sequential(
            nn.Linear(N_CLASSES + 3 * 8 * 8, 16), nn.LeakyReLU(0.2, inplace=True), nn.Linear(16, 1)
        )

    def forward(self, img, labels):
        d_in = torch.cat((img.view(img.size(0), -1), self.label_embedding(labels)), -1)
        return self.model(d_in)


class MLPGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3 * 6 * 6), nn.Sigmoid())

    def forward(self, z):
        return self.net(z).view(-1, 3, 6, 6)


def dcgan_generator() -> nn.Module:
    return DCGANGenerator()


def dcgan_discriminator() -> nn.Module:
    return DCGANDiscriminator()


def cond_generator() -> nn.Module:
    return CondGenerator()


def cond_discriminator() -> nn.Module:
    return CondDiscriminator()
