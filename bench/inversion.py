"""How well each way into latent space inverts real images the model never saw: E's one pass
(what POST /invert answers), E plus the served `refine` search, and `python -m training project`
(the optimisation through G in torch), on the held-out real images of the model's data set
(valid + test), each beside the nearest training image measured the same way.

    .venv/bin/python bench/inversion.py models/mnist --refine 64 256 --project-steps 300

Figures per way: pixel MSE of the reconstruction, squared distance in the project classifier's
64-d features, the share the classifier calls by the image's own label (where it knows the
labels), and the time for all images. E, refine and project run here, not over HTTP: refine is
the service's own function (service/core/inversion.py) on the served engine; project the training
package's. The host is printed beside the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from host import describe  # noqa: E402

from models.card import read_card  # noqa: E402
from service.core.inversion import invert  # noqa: E402
from service.runtime.engine import Engine  # noqa: E402
from training.encoder.real import Judge, real_images  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a model folder with an encoder and a training record")
    parser.add_argument("--n", type=int, default=1000, help="held-out images (default: up to 1,000)")
    parser.add_argument("--refine", type=int, nargs="*", default=[64, 256], help="refine budgets to measure")
    parser.add_argument("--project-steps", type=int, default=300, help="0 skips projection")
    parser.add_argument("--project-n", type=int, default=1000, help="images projected (it is the slow way)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    card = read_card(args.folder)
    held, train = real_images(card, ("valid", "test")), real_images(card, ("train",))
    if held is None or not card.has_encoder:
        print(f"{args.folder}: needs an encoder and a card that names its training data set", file=sys.stderr)
        return 2
    pick = slice(0, min(args.n, len(held.x)))
    held.x, held.c = held.x[pick], None if held.c is None else held.c[pick]
    held.labels = None if held.labels is None else held.labels[pick]
    judge = Judge(card, held, train)
    ref = judge.reference
    print(f"host: {describe()}")
    print(f"{card.name}: {len(held.x)} held-out real {card.dataset} images; feature net {ref.feature_net}")
    print(f"| way | pixel MSE | feature distance | class kept | time ({args.threads} threads) |")
    print("|---|---:|---:|---:|---:|")
    row = "| {} | {:.4f} | {} | {} | {:.1f} s |"

    def show(name, recon, seconds, subset=None):
        judged = (judge if subset is None else judge.first(subset))(recon)
        fd = "" if judged.feature_distance is None else f"{judged.feature_distance:.3f}"
        kept = "" if judged.class_kept is None else f"{judged.class_kept:.3f}"
        print(row.format(name, judged.pixel_mse, fd, kept, seconds), flush=True)

    engine = Engine.from_folder(args.folder, device="cpu", intra_op_threads=args.threads)
    model = engine.get(card.name)
    try:
        for k in [0, *args.refine]:
            t = time.perf_counter()
            out = invert(model, held.x, held.c, refine=k, seed=0)
            show("E alone" if k == 0 else f"E + refine {k}", out.reconstructions, time.perf_counter() - t)
    finally:
        engine.executor.shutdown(wait=False)
    if args.project_steps:
        import torch

        from training.projection.project import Projector

        torch.set_num_threads(args.threads)
        m = min(args.project_n, len(held.x))
        t = time.perf_counter()
        result = Projector(args.folder).project(
            held.x[:m], None if held.c is None else held.c[:m], steps=args.project_steps, progress=True
        )
        seconds = time.perf_counter() - t
        show(f"E alone, the same {m} images (projection's start)", result.start_x, 0.0, m)
        show(f"project, {args.project_steps} steps ({m} images)", result.x, seconds, m)
    near = "" if ref.feature_distance is None else f"{ref.feature_distance:.3f}"
    acc = "" if ref.classifier_accuracy is None else f"{ref.classifier_accuracy:.3f} (the real images)"
    print(f"| nearest training image (reference) | {ref.pixel_mse:.4f} | {near} | {acc} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
