"""The quantizable blocks of an encoder classifier, and which graph nodes belong to each.

    blocks = onnx_blocks("model.onnx")       # {"layer.0.qkv": ["/bert/encoder/layer.0/.../MatMul", ...], ...}
    blocks = openvino_blocks(ov_model)       # the same, with OpenVINO op names (for NNCF's IgnoredScope)

A block is what the sensitivity ranking keeps in FP32 as one unit: per encoder layer ``qkv``
(the Q/K/V projections and, where they are quantized, the QK^T and attention x V products),
``attn_out`` (the attention output projection), ``ffn_in`` and ``ffn_out``; then
``embeddings`` and ``classifier`` (pooler and classification head). This module is the one
place that reads node names: every other module asks for blocks by these names.

Names are read from what the exporters leave behind, in order: the node name, its output
names, the names of the weights it consumes and, for the dynamo exporter, its
``pkg.torch.onnx.name_scopes`` / ``namespace`` metadata. A fused node that carries no layer in
any of them (ORT's ``Attention_3``) takes the layer of the first named node it feeds.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

KINDS = ("qkv", "attn_out", "ffn_in", "ffn_out")
HEAD_BLOCKS = ("embeddings", "classifier")
# Operators a quantizer turns into INT8 (ORT: MatMul, Gemm, Gather, fused Attention and embedding;
# OpenVINO / NNCF: MatMul and Gather).
QUANTIZABLE = {"MatMul", "Gemm", "Gather", "Attention", "MultiHeadAttention", "EmbedLayerNormalization"}
FUSED_ATTENTION = {"Attention", "MultiHeadAttention"}

_LAYER = re.compile(r"(?:^|[./_\s])(?:layers?|layer_|block|blocks)[._/]?(\d+)(?=[./_\s]|$)")
_SPLIT = re.compile(r"[./\s:'\",\[\]]+")


def block_names(num_layers: int) -> list[str]:
    """Every block of a ``num_layers`` encoder, in forward order."""
    return ["embeddings", *(f"layer.{i}.{k}" for i in range(num_layers) for k in KINDS), "classifier"]


def describe(block: str) -> str:
    """A reader's name for a block: ``layer.2.ffn_out`` -> "layer 2 FFN out"."""
    words = {"qkv": "Q/K/V", "attn_out": "attention out", "ffn_in": "FFN in", "ffn_out": "FFN out"}
    if block.startswith("layer."):
        _, i, kind = block.split(".")
        return f"layer {i} {words[kind]}"
    return block


def classify(hint: str, op_type: str = "") -> str | None:
    """The block a node belongs to, from one name (node, output, weight or scope), or None."""
    seg = {s for s in _SPLIT.split(hint.lower()) if s}
    if op_type == "EmbedLayerNormalization" or "embeddings" in seg or "word_embeddings" in seg:
        return "embeddings"
    if seg & {"classifier", "pooler", "pre_classifier", "score", "logits"}:
        return "classifier"
    low = hint.lower()
    match = _LAYER.search(low)
    if not match:
        return None
    layer = match.group(1)
    rest = {s for s in _SPLIT.split(low[match.end():]) if s}
    kind = None
    if op_type in FUSED_ATTENTION:
        kind = "qkv"
    elif rest & {"out_lin", "o"} or {"attention", "output"} <= rest:
        kind = "attn_out"                       # BERT attention.output.dense, DistilBERT out_lin, MPNet attn.o
    elif rest & {"query", "key", "value", "q_lin", "k_lin", "v_lin", "q", "k", "v", "qkv", "self", "attn",
                 "attention"}:
        kind = "qkv"                            # projections, and the products inside the attention module
    elif rest & {"intermediate", "lin1"}:
        kind = "ffn_in"
    elif rest & {"output", "lin2"}:
        kind = "ffn_out"                        # BERT layer.N.output.dense, DistilBERT ffn.lin2
    return f"layer.{layer}.{kind}" if kind else None


def _node_block(hints: list[str], op_type: str) -> str | None:
    for hint in hints:
        block = classify(hint, op_type)
        if block:
            return block
    return None


def _layer_of(block: str | None) -> str | None:
    return block.split(".")[1] if block and block.startswith("layer.") else None


def onnx_blocks(path: str | Path) -> dict[str, list[str]]:
    """{block: [node names]} of the quantizable nodes of an ONNX graph (unplaced nodes left out)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def hints(node) -> list[str]:
        meta = [p.value for p in node.metadata_props if p.key in ("pkg.torch.onnx.name_scopes", "namespace")]
        # A MatMul's bias usually sits in the Add that follows it, with the module's name.
        follow = [i for c in consumers[node.output[0]] if c.op_type == "Add" for i in c.input if i in weights] \
            if node.output else []
        return [node.name, *node.output, *[i for i in node.input if i in weights], *follow, *meta]

    placed: dict[str, str | None] = {}
    for node in graph.node:
        if node.op_type in QUANTIZABLE:
            placed[node.name] = _node_block(hints(node), node.op_type)
    for node in graph.node:       # fused attention named without its layer: the layer of what it feeds
        if node.op_type in FUSED_ATTENTION and placed.get(node.name) is None:
            layer = _downstream_layer(node, consumers, lambda n: _node_block(hints(n), n.op_type))
            placed[node.name] = f"layer.{layer}.qkv" if layer is not None else None
    out: dict[str, list[str]] = defaultdict(list)
    for name, block in placed.items():
        if block:
            out[block].append(name)
    return dict(out)


def _downstream_layer(node, consumers, block_of, depth: int = 4) -> str | None:
    frontier = [node]
    for _ in range(depth):
        frontier = [c for n in frontier for o in n.output for c in consumers[o]]
        for c in frontier:
            layer = _layer_of(block_of(c))
            if layer is not None:
                return layer
    return None


def openvino_blocks(model) -> dict[str, list[str]]:
    """{block: [op friendly names]} of the MatMul and Gather ops of an OpenVINO model, the names
    NNCF's ``IgnoredScope(names=...)`` matches."""
    out: dict[str, list[str]] = defaultdict(list)
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("MatMul", "Gather"):
            continue
        names = [op.get_friendly_name(), *(n for o in op.outputs() for n in o.get_names())]
        block = _node_block(names, op.get_type_name())
        if block:
            out[block].append(op.get_friendly_name())
    return dict(out)


def resolve(blocks: dict[str, list[str]], chosen) -> list[str]:
    """The node names of the ``chosen`` blocks (unknown blocks contribute nothing)."""
    return [name for b in chosen for name in blocks.get(b, [])]


def forward_order(names) -> list[str]:
    """Block names sorted as the model runs them: embeddings, layer by layer, classifier."""
    def key(block: str):
        if block == "embeddings":
            return (0, 0, 0)
        if block.startswith("layer."):
            _, i, kind = block.split(".")
            return (1, int(i), KINDS.index(kind))
        return (2, 0, 0)
    return sorted(names, key=key)
