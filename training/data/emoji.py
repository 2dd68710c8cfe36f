"""`emoji`: real RGB images that install offline. Debian's `fonts-noto-color-emoji` (Noto Color
Emoji, Unicode 15.0) drawn with Pillow, one image per fully-qualified emoji of Unicode's
`emoji-test.txt` (Debian's `unicode-data`), labelled by its Unicode group ("Smileys & Emotion", ...).

- Each emoji is drawn at the font's one bitmap size (109 px, `embedded_color=True`), composited
  over white, centred on a square and resized with Lanczos to `size`. A sequence the font has no
  single glyph for (it would draw as several glyphs side by side) is left out, as is the
  "Component" group (skin-tone swatches, hair parts).
- `sequences=false` keeps single code points only (~1,400); the default also keeps sequences
  (skin tones, ZWJ families, flags: ~3,600 in all).
- The split is by *base* emoji (skin-tone modifiers removed), by a hash of its code points: 80%
  train, 10% valid, 10% test. The skin-tone variants of one emoji never straddle two splits, and
  the split is the same on every machine.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from training.data import DataError, DatasetInfo, Split

OPTIONS = {"size": (int, 32), "sequences": (bool, True)}
FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
TEST_FILE = Path("/usr/share/unicode/emoji/emoji-test.txt")
FONT_SIZE = 109  # the one size Noto Color Emoji's bitmaps (CBDT) come in
SKIN_TONES = {0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF}
SKIPPED_GROUPS = {"Component"}
GROUPS = (
    "Smileys & Emotion",
    "People & Body",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
    "Flags",
)
SPLIT_BUCKETS = {"train": range(0, 80), "valid": range(80, 90), "test": range(90, 100)}


def _check(size: int) -> None:
    if not 8 <= size <= 128:
        raise DataError(f"dataset_options.size: {size} is outside 8..128 for 'emoji'")
    for path, package in ((FONT_PATH, "fonts-noto-color-emoji"), (TEST_FILE, "unicode-data")):
        if not path.is_file():
            raise DataError(
                f"{path}: missing; the emoji dataset needs Debian's {package} "
                f"(apt-get install {package}, or `make setup`)"
            )


def emoji_info(size: int, sequences: bool) -> DatasetInfo:
    _check(size)
    which = "all fully-qualified emoji" if sequences else "single code point emoji"
    return DatasetInfo(
        "emoji",
        (3, size, size),
        "image",
        (0.0, 1.0),
        f"Noto Color Emoji, {which}, {size}x{size} RGB on white, labelled by Unicode group, "
        "split 80/10/10 by base emoji",
        class_names=GROUPS,
    )


def read_test_file(path: Path = TEST_FILE) -> list[tuple[str, str]]:
    """(emoji, group) for every fully-qualified line of emoji-test.txt, in file order."""
    out, group = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#") and "; fully-qualified" in line:
            codes = line.split(";", 1)[0].split()
            out.append(("".join(chr(int(c, 16)) for c in codes), group))
    if not out:
        raise DataError(f"{path}: no fully-qualified emoji found; is it Unicode's emoji-test.txt?")
    return out


def split_of(emoji: str) -> str:
    """The split of an emoji: a hash of its base (skin tones removed), so variants stay together."""
    base = "".join(ch for ch in emoji if ord(ch) not in SKIN_TONES)
    bucket = int.from_bytes(hashlib.sha256(base.encode("utf-8")).digest()[:4], "big") % 100
    return next(name for name, r in SPLIT_BUCKETS.items() if bucket in r)


def draw(font, emoji: str, size: int) -> np.ndarray | None:
    """One emoji as (3, size, size) uint8 on white, or None where the font draws several glyphs."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(emoji)
    w, h = right - left, bottom - top
    if w <= 0 or h <= 0 or w > 1.3 * h:  # no glyph, or a sequence drawn as several glyphs
        return None
    side = max(w, h)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    glyph = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    ImageDraw.Draw(glyph).text(((side - w) // 2 - left, (side - h) // 2 - top), emoji, font=font, embedded_color=True)
    canvas.alpha_composite(glyph)
    image = canvas.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


@lru_cache(maxsize=4)
def render(size: int, sequences: bool) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Every usable emoji: images (N, 3, size, size) uint8, group indices (N,), and the emoji."""
    from PIL import ImageFont

    _check(size)
    try:
        font = ImageFont.truetype(str(FONT_PATH), FONT_SIZE)
    except OSError as e:
        raise DataError(f"{FONT_PATH}: Pillow cannot read it as a font ({e})") from None
    images, labels, kept = [], [], []
    for emoji, group in read_test_file():
        if group in SKIPPED_GROUPS or (not sequences and len(emoji.rstrip("\ufe0f")) > 1):
            continue
        image = draw(font, emoji, size)
        if image is not None:
            images.append(image)
            labels.append(GROUPS.index(group))
            kept.append(emoji)
    out = np.stack(images), np.asarray(labels, dtype=np.int64), tuple(kept)
    for a in out[:2]:
        a.flags.writeable = False
    return out


def load_emoji(split: str, size: int, sequences: bool) -> Split:
    images, labels, kept = render(size, sequences)
    pick = np.asarray([split_of(e) == split for e in kept])
    x = torch.from_numpy(images[pick].astype(np.float32) / 255.0)  # (N, 3, size, size) in [0, 1]
    return Split(x, torch.from_numpy(labels[pick].copy()))
