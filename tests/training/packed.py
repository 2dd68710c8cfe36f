"""Models packed from tutorial-style GANs (tutorial_gans.py), shared by test_pack.py and
test_pack_serve.py: their weights written as users write them (safetensors, torch.save of a state
dict), the torch ones packed by `python -m training pack`, the TorchScript-exported ONNX one by
`python -m service pack` in a process where torch and onnx cannot be imported.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # `tutorial_gans:...` for --torch-generator, as a user's own module
import tutorial_gans as tut  # noqa: E402

# Run the service's command with torch and onnx unimportable: packing ONNX needs neither.
NO_TORCH = (
    "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None; "
    "from service.__main__ import main; sys.exit(main(sys.argv[1:]))"
)


@dataclass
class Packed:
    models: Path  # the models dir holding the packed folders
    files: Path  # the users' files (weights, ONNX) they were packed from
    generators: dict  # name -> the torch G in eval mode, to compare against
    discriminators: dict  # name -> the torch D in eval mode (as the user wrote it)


def training_pack(*argv: str) -> subprocess.CompletedProcess:
    """`python -m training pack ...` as a user runs it, from the tutorial module's folder."""
    return subprocess.run(
        [sys.executable, "-m", "training", "pack", *argv],
        cwd=HERE,
        capture_output=True,
        text=True,
        env={**_env(), "PYTHONPATH": str(REPO)},
    )


def service_pack_without_torch(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, "pack", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**_env(), "PYTHONPATH": str(REPO)},
    )


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("GANSERVE_")}


def export_torchscript(module: torch.nn.Module, example: torch.Tensor, path: Path, names: tuple[str, str]) -> None:
    """The way tutorials export: torch's TorchScript-based exporter (deprecated, so it warns), not ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[names[0]],
            output_names=[names[1]],
            dynamic_axes={names[0]: {0: "n"}, names[1]: {0: "n"}},
            dynamo=False,
            opset_version=17,
        )


class Result:
    def __init__(self, returncode: int, stderr: str):
        self.returncode, self.stderr = returncode, stderr


def service_pack_here(capsys, *argv: str) -> Result:
    """`python -m service pack` in this process (quicker for refusals; the fixture proves the
    no-torch subprocess)."""
    from service.__main__ import main

    capsys.readouterr()
    code = main(["pack", *argv])
    return Result(code, capsys.readouterr().err)


def build(root: Path) -> Packed:
    files, models = root / "files", root / "models"
    files.mkdir(parents=True)
    torch.manual_seed(0)
    G, D = tut.DCGANGenerator(), tut.DCGANDiscriminator()
    G.apply(tut.weights_init)
    D.apply(tut.weights_init)
    G.eval(), D.eval()
    save_file(G.state_dict(), str(files / "dcgan_G.safetensors"))
    torch.save(D.state_dict(), files / "dcgan_D.pt")
    cG, cD = tut.CondGenerator().eval(), tut.CondDiscriminator().eval()
    torch.save(cG.state_dict(), files / "cgan_G.pth")
    save_file(cD.state_dict(), str(files / "cgan_D.safetensors"))
    mG = tut.MLPGenerator().eval()
    with torch.no_grad():  # wide weights: untrained samples that span the sigmoid's [0, 1]
        for p in mG.parameters():
            p.normal_(0.0, 1.0)
    export_torchscript(mG, torch.randn(2, 8), files / "mlp_G.onnx", ("noise", "image"))

    runs = [
        training_pack(
            "--torch-generator",
            "tutorial_gans:dcgan_generator",
            "--weights",
            str(files / "dcgan_G.safetensors"),
            "--torch-discriminator",
            "tutorial_gans:dcgan_discriminator",
            "--discriminator-weights",
            str(files / "dcgan_D.pt"),
            "--discriminator-output",
            "probability",
            "--latent-shape",
            "100,1,1",
            "--value-range",
            "-1,1",
            "--name",
            "tut-dcgan",
            "--description",
            "pytorch/examples dcgan, untrained",
            "--out",
            str(models),
            "--realness-samples",
            "200",
        ),
        training_pack(
            "--torch-generator",
            "tutorial_gans:cond_generator",
            "--weights",
            str(files / "cgan_G.pth"),
            "--torch-discriminator",
            "tutorial_gans:cond_discriminator",
            "--discriminator-weights",
            str(files / "cgan_D.safetensors"),
            "--latent-dim",
            str(tut.COND_LATENT),
            "--classes",
            "red,green,blue",
            "--value-range",
            "0,1",
            "--name",
            "tut-cgan",
            "--out",
            str(models),
            "--realness-samples",
            "200",
        ),
        service_pack_without_torch(
            "--generator",
            str(files / "mlp_G.onnx"),
            "--value-range",
            "0,1",
            "--name",
            "tut-gonly",
            "--out",
            str(models),
        ),
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    return Packed(models, files, {"tut-dcgan": G, "tut-cgan": cG, "tut-gonly": mG}, {"tut-dcgan": D, "tut-cgan": cD})
