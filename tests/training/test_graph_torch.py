"""training/graph_torch/: every graph ganserve ships, and a style-based network written elsewhere,
run in torch agree with onnxruntime; gradients reach the inputs and never the weights; an operator
it does not run is refused by name when the graph is loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from tests.style_factory import export_graphs
from training.folder_generator import FolderGenerator
from training.graph_torch import GraphOpError, TorchGraph

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = sorted(MODELS.glob("*/*.onnx"))


@pytest.fixture(autouse=True)
def one_thread(torch_single_thread):
    yield


def _random_feeds(session: ort.InferenceSession, n: int, rng: np.random.Generator) -> dict:
    feeds = {}
    for i in session.get_inputs():
        shape = [n if not isinstance(d, int) else d for d in i.shape]
        if "int64" in i.type:
            feeds[i.name] = rng.integers(0, 2, shape).astype(np.int64)
        else:
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _gap(path: Path) -> float:
    """The largest difference from onnxruntime on random inputs, relative above 1 (D's logits
    reach tens)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = _random_feeds(session, 7, np.random.default_rng(0))
    want = session.run(None, feeds)[0]
    with torch.no_grad():
        got = TorchGraph(path)(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    assert got.shape == want.shape, path
    return float(np.abs(got.numpy() - want).max()) / max(1.0, float(np.abs(want).max()))


def test_there_are_shipped_graphs_to_check():
    assert len(SHIPPED) >= 12  # six folders' generators and discriminators at least


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_graph_agrees_with_onnxruntime(path):
    assert _gap(path) <= 1e-4


def test_a_foreign_style_network_agrees_with_onnxruntime(tmp_path):
    graphs = export_graphs(tmp_path)
    onnx_files = [p for p in graphs.values() if str(p).endswith(".onnx")]
    assert len(onnx_files) == 3  # mapping, synthesis (Resize, Split, ReduceMean ...), D
    for path in onnx_files:
        assert _gap(Path(path)) <= 1e-5, path


def test_gradients_reach_the_latent_and_never_the_weights():
    G = FolderGenerator(MODELS / "mnist")
    z = torch.zeros(3, 100, requires_grad=True)
    G(z).sum().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    assert all(not b.requires_grad for b in G.buffers()) and not list(G.parameters())
    # The conditional model takes its class and refuses to run without one.
    Gc = FolderGenerator(MODELS / "mnist-cond")
    x = Gc(torch.zeros(2, Gc.latent_dim), torch.tensor([3, 4]))
    assert x.shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="needs the class"):
        Gc(torch.zeros(2, Gc.latent_dim))
    # Uniform z is kept in its box; values inside it are untouched.
    high = G.card.latent.high
    inside = torch.tensor([[0.5] * 100, [high + 1.0] * 100])
    assert torch.equal(G.clamp(inside)[0], inside[0]) and float(G.clamp(inside)[1].max()) == pytest.approx(high)


def test_an_operator_it_does_not_run_is_named_at_load(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    node = helper.make_node("Hardmax", ["x"], ["y"], name="the_hardmax")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, tmp_path / "odd.onnx")
    with pytest.raises(GraphOpError, match=r"odd\.onnx: node 'the_hardmax' uses Hardmax"):
        TorchGraph(tmp_path / "odd.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(GraphOpError, match="junk.onnx"):
        TorchGraph(tmp_path / "junk.onnx")


def test_an_attribute_it_does_not_handle_is_named_at_load(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 8, 8])
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="cubic")
    graph = helper.make_graph([node], "g", [x], [y], initializer=[scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, tmp_path / "cubic.onnx")
    with pytest.raises(GraphOpError, match=r"cubic\.onnx: node 'up': Resize mode=cubic"):
        TorchGraph(tmp_path / "cubic.onnx")
