"""The house rules, read from the source: service/ is layered (a module imports only its own layer
and the layers below), no private name crosses a module boundary anywhere in the project, and each
extension point is written in one place. docs/DESIGN.md ("The map") states the same rules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Bottom to top. The floor (settings.py, client/) imports nothing of the service; the top
# (service.py, __main__.py, commands/) may import anything.
LAYERS = ["floor", "runtime", "core", "datasets", "http", "top"]
FLOOR = {"service.settings", "service.client"}
FEATURES = {"datasets", "packing"}  # side by side on one floor: neither imports the other


def layer_of(module: str) -> str:
    if any(module == f or module.startswith(f + ".") for f in FLOOR):
        return "floor"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("runtime", "core", "http"):
        return parts[1]
    if len(parts) > 1 and parts[1] in FEATURES:
        return "datasets"
    return "top"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every absolute import, `from a import b` counted as a.b too (b may be a module)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def sources(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py") if ".venv" not in p.parts)


def test_service_modules_import_only_their_layer_and_the_layers_below():
    wrong = []
    for path in sources("service"):
        me = module_name(path)
        mine = layer_of(me)
        for line, target in imported(ast.parse(path.read_text())):
            if not target.startswith("service.") or target.startswith(me + "."):
                continue
            theirs = layer_of(target)
            upward = LAYERS.index(theirs) > LAYERS.index(mine)
            sideways = mine == theirs == "datasets" and target.split(".")[1] != me.split(".")[1]
            if upward or sideways:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {me} ({mine}) imports {target} ({theirs})")
    assert not wrong, "\n".join(wrong)


def test_no_relative_imports_in_the_service():
    """Absolute imports name the layer they reach into, which is what the rule above reads."""
    relative = [
        f"{p.relative_to(REPO)}:{n.lineno}"
        for p in sources("service")
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.ImportFrom) and n.level
    ]
    assert not relative, relative


def test_no_private_name_crosses_a_module_boundary():
    """`from m import _x` and `m._x` for a module m of the project: a private name is the module's
    own business, and tests import what they test from where it lives, by its public name."""
    project = ("service", "training", "models", "tests", "bench")
    crossings = []
    for path in sources(*project):
        tree = ast.parse(path.read_text())
        modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in project:
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        crossings.append(f"{path.relative_to(REPO)}:{node.lineno}: from {node.module} import {a.name}")
                    modules[a.asname or a.name] = True
            elif isinstance(node, ast.Import):
                modules.update(
                    {(a.asname or a.name.split(".")[0]): True for a in node.names if a.name.split(".")[0] in project}
                )
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                crossings.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not crossings, "\n".join(crossings)


@pytest.mark.parametrize(
    "part, forbidden",
    [
        ("service", ("torch", "training", "onnx")),
        ("training", ("bentoml", "service")),
        ("models", ("torch", "service", "training", "bentoml")),
    ],
)
def test_the_three_parts_keep_to_their_contract(part, forbidden):
    """service/ serves without torch (and without the onnx package: the image lacks it), training/
    trains without BentoML, and models/card.py is the only thing they share."""
    found = [
        f"{p.relative_to(REPO)}:{line}: {target}"
        for p in sources(part)
        for line, target in imported(ast.parse(p.read_text()))
        if target.split(".")[0] in forbidden
    ]
    assert not found, found


@pytest.mark.parametrize(
    "pattern, home",
    [
        (r'getattr\(request\.app\.state, "engine"', "service/http/context.py"),  # engine_of(request)
        (r"^LOOP_MAX_BODY_BYTES =", "service/http/context.py"),
        (r"^(FORMATS|NPY_MEDIA_TYPE|PNG_MEDIA_TYPE) *[:=]", "service/core/formats.py"),
        (r"^STATUSES\b", "service/http/errors.py"),
        (r"\bort\.InferenceSession\(", "service/runtime/backends.py"),  # every served graph, through a backend
        (r"^class RequestError\b", "service/core/problems.py"),
    ],
)
def test_each_extension_point_is_written_in_one_place(pattern, home):
    """What used to be repeated (the engine lookup, the loop's body limit, the formats' media types,
    the status mapping, how a graph is opened) is defined once, where DESIGN.md's map says (the
    exceptions, with their reasons, in ALLOWED_COPIES)."""
    where = sorted(
        str(p.relative_to(REPO))
        for p in sources("service")
        if re.search(pattern, p.read_text(), re.M) and str(p.relative_to(REPO)) not in ALLOWED_COPIES
    )
    assert where == [home], where


# Where a second definition is the point, and why.
ALLOWED_COPIES = {
    # The HTTP client is a standalone package on the floor (usable without the server's packages), so it
    # names the npy media type itself; test_the_clients_media_type_is_the_tables holds it to the table.
    "service/client/session.py",
    # The CUDA probe opens a session to learn the device; pack reads a graph's signature. Neither serves.
    "service/runtime/providers.py",
    "service/packing/pack.py",
}


def test_the_clients_media_type_is_the_tables():
    from service import client
    from service.core import formats

    assert client.NPY_MEDIA_TYPE == formats.NPY_MEDIA_TYPE


@pytest.mark.parametrize("module", ["engine.py", "model.py"])
def test_the_engine_names_no_backend(module):
    source = (REPO / "service" / "runtime" / module).read_text().lower()
    assert "openvino" not in source and "backends.onnxruntime" not in source


def test_the_backend_setting_and_the_clis_name_every_backend():
    """Settings sits on the floor and cannot import the backends, so it names them itself; this
    holds it (and the commands' --backend choices) to runtime/backends.py BACKENDS."""
    import argparse
    import typing

    from service.commands import generate, serve
    from service.runtime import backends
    from service.settings import Settings

    assert set(typing.get_args(Settings.model_fields["backend"].annotation)) == {"auto", *backends.NAMES}
    for command in (serve, generate):
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        choices = next(a.choices for a in parser._actions if a.dest == "backend")
        assert set(choices) == {"auto", *backends.NAMES}
