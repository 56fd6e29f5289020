"""The conversions behind each variant: ONNX export, graph fusions, ORT and NNCF quantization.

Each function takes file paths (and calibration feeds) and writes one model file, so the
pipeline can chain them: checkpoint -> ONNX FP32 -> {optimized, INT8 dynamic, INT8 static QDQ,
OpenVINO FP32 / FP16 / INT8}. None of them checks accuracy; export/checks.py does that.
"""
from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from export import blocks
from export.errors import ExportError

ONNX_FILE = "model.onnx"              # a graph's name in the export's workspace (artifact names: layout.py)
# Fused operators grouped by the three fusions that matter for encoder speed.
FUSION_KINDS = {
    "attention": ("Attention", "MultiHeadAttention"),
    "layer_norm": ("LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
                   "SkipSimplifiedLayerNormalization", "EmbedLayerNormalization"),
    "gelu": ("Gelu", "FastGelu", "BiasGelu", "GemmFastGelu"),
}


@contextlib.contextmanager
def quiet():
    """Silence the converters' progress chatter; real errors still raise."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        loggers = [logging.getLogger(n) for n in (
            "torch.onnx", "transformers", "onnxruntime", "nncf", "onnxscript", "root")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def contrib_ops(path: str | Path) -> list[str]:
    """The com.microsoft operators of an ONNX graph (ONNX Runtime's own kernels: other runtimes lack them)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return sorted({n.op_type for n in graph.node if n.domain == "com.microsoft"})


def onnx_opset(path: str | Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


# PyTorch's own exporters (torch.onnx.export): "torchscript" traces the model (dynamo=False),
# "dynamo" captures it with torch.export and writes the graph through onnxscript. Compared on
# parity, graph size, ORT fusions, INT8 speed and OpenVINO conversion in docs/exporter.md.
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"
DEFAULT_OPSET = {"torchscript": 17, "dynamo": 18}
OUTPUT_NAME = "logits"


def export_onnx(model, out_dir: str | Path, opset: int | None = None, exporter: str = DEFAULT_EXPORTER) -> Path:
    """ONNX FP32 with ``torch.onnx.export``: inputs by their tokenizer names, one ``logits`` output,
    batch and sequence axes dynamic (the layout ONNX Runtime, OpenVINO and optimum's ORT models read)."""
    import torch

    from edgedistill.runtime import model_input_names

    if exporter not in EXPORTERS:
        raise ExportError(f"exporter {exporter!r} is not one of {', '.join(EXPORTERS)}")
    opset = opset or DEFAULT_OPSET[exporter]
    names = model_input_names(model)
    model = model.float().eval()
    # Eager attention: the explicit MatMul -> Softmax -> MatMul pattern that ONNX Runtime's
    # transformer optimizer fuses into its Attention kernel; SDPA exports as another pattern.
    # Restored afterwards: the caller's model is left as it came.
    previous = getattr(model.config, "_attn_implementation", None)
    model.config._attn_implementation = "eager"
    wrapped = _logits_only(model, names)
    # Batch 2 with one padded row, so the attention mask path is traced with real masking.
    vocab = int(getattr(model.config, "vocab_size", 0) or 100)
    ids = torch.randint(0, vocab, (2, 16), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    sample = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    args = tuple(sample[n] for n in names)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ONNX_FILE
    # Inside out_dir (the export's workspace), so a killed export leaves nothing in /tmp.
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp, quiet(), torch.no_grad():
        tmp_path = Path(tmp) / ONNX_FILE
        try:
            if exporter == "torchscript":
                axes = {n: {0: "batch_size", 1: "sequence_length"} for n in names}
                torch.onnx.export(wrapped, args, str(tmp_path), input_names=list(names), output_names=[OUTPUT_NAME],
                                  dynamic_axes={**axes, OUTPUT_NAME: {0: "batch_size"}}, opset_version=opset,
                                  do_constant_folding=True, dynamo=False)
            else:
                batch, seq = torch.export.Dim("batch_size"), torch.export.Dim("sequence_length")
                shapes = {n: {0: batch, 1: seq} for n in names}
                program = torch.onnx.export(wrapped, args, input_names=list(names), output_names=[OUTPUT_NAME],
                                            dynamic_shapes={"inputs": tuple(shapes[n] for n in names)},
                                            opset_version=opset, dynamo=True, optimize=True, verify=False)
                program.save(str(tmp_path), external_data=False)
        except Exception as exc:  # the exporters raise many types; all mean "this model cannot export"
            raise ExportError(f"torch.onnx.export ({exporter}) could not export {type(model).__name__} to ONNX "
                              f"(opset {opset}): {exc}") from exc
        finally:
            model.config._attn_implementation = previous
        for f in Path(tmp).iterdir():
            if f.name == ONNX_FILE or f.name.startswith(ONNX_FILE + "_") or f.suffix == ".data":
                shutil.move(str(f), out_dir / f.name)
    return path


def _logits_only(model, names: tuple[str, ...]):
    """The classifier as a module of its tokenizer inputs (positional, in ``names`` order) -> logits."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).logits

    return LogitsOnly()


def optimizer_model_type(config) -> str:
    # ORT's "bert" fusions cover the BERT family (BERT, MiniLM, RoBERTa, DistilBERT, ELECTRA).
    return "bert"


def optimize_onnx(src: str | Path, dst: str | Path, config) -> dict:
    """ORT transformer fusions (attention, layer norm, GELU); returns counts by kind and by op."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    options = FusionOptions("bert")
    options.enable_gelu_approximation = False     # exact GELU: the FP32 parity check stays tight
    with quiet():
        model = optimizer.optimize_model(str(src), model_type=optimizer_model_type(config), num_heads=int(heads),
                                         hidden_size=int(hidden), optimization_options=options, opt_level=0)
        stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
        model.save_model_to_file(str(dst))
    fusions = {kind: sum(stats.get(op, 0) for op in ops) for kind, ops in FUSION_KINDS.items()}
    return {**fusions, "ops": stats}


# What ONNX Runtime runs after its own load-time graph optimizations, by kind. The CPU provider
# fuses LayerNorm and GELU itself, so the plain export and the offline-fused one can run nearly
# the same kernels; "fp32_matmul" next to "int8_matmul" shows a quantized graph whose MatMuls
# did not become integer kernels (every call then dequantizes weights and multiplies in FP32).
RUNTIME_KINDS = {
    **FUSION_KINDS,
    "attention": FUSION_KINDS["attention"] + ("QAttention",),
    "layer_norm": FUSION_KINDS["layer_norm"] + ("QEmbedLayerNormalization",),
    "int8_matmul": ("QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QGemm",
                    "QAttention"),
    "fp32_matmul": ("MatMul", "Gemm", "FusedGemm", "FusedMatMul"),
    "dequantize": ("DequantizeLinear",),
}


def session_ops(path: str | Path, threads: int = 1) -> dict[str, int]:
    """Operator counts of the graph ONNX Runtime actually runs (after its load-time optimizations)."""
    import collections

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        opts.optimized_model_filepath = str(Path(tmp) / "session.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        graph = onnx.load(opts.optimized_model_filepath, load_external_data=False).graph
    return dict(collections.Counter(n.op_type for n in graph.node).most_common())


def runtime_fusions(path: str | Path) -> dict:
    """``session_ops`` grouped by RUNTIME_KINDS, plus the raw counts under "ops"."""
    ops = session_ops(path)
    return {**{kind: sum(ops.get(op, 0) for op in names) for kind, names in RUNTIME_KINDS.items()}, "ops": ops}


def quantize_dynamic_onnx(src: str | Path, dst: str | Path, per_channel: bool = True,
                          exclude_blocks: Sequence[str] = ()) -> list[str]:
    """Weights INT8 (per output channel by default), activations quantized on the fly at run time.

    Works on fused graphs too. Per-channel scales cost a few KB and recover most of the
    agreement lost to one scale per weight matrix. ``exclude_blocks`` (export/blocks.py) stay
    FP32; returns the names of their nodes.
    """
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = blocks.resolve(blocks.onnx_blocks(src), exclude_blocks) if exclude_blocks else []
    with quiet():
        # DefaultTensorType: the fused contrib ops (Attention, SkipLayerNorm) carry no inferred types.
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                         nodes_to_exclude=excluded, extra_options={"DefaultTensorType": TensorProto.FLOAT})
    return excluded


def gelu_fed_matmuls(path: str | Path) -> list[str]:
    """MatMuls whose input is a GELU output (the FFN output projections).

    GELU outputs have a long positive tail, so one INT8 range for them loses the small values
    that carry most of the signal; these MatMuls are the usual culprits of static INT8 loss.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}

    def from_gelu(tensor: str, depth: int = 4) -> bool:
        node = producer.get(tensor)
        if node is None or depth == 0:
            return False
        if node.op_type in ("Gelu", "FastGelu", "BiasGelu", "Erf"):
            return True
        return node.op_type in ("Mul", "Add", "Div") and any(from_gelu(i, depth - 1) for i in node.input)

    return [n.name for n in graph.node if n.op_type == "MatMul" and from_gelu(n.input[0])]


# Static INT8 number formats. ONNX Runtime's x86 kernels (MLAS) multiply unsigned 8-bit
# activations by signed 8-bit weights (U8S8, VNNI/AMX). With signed activations (S8) the CPU
# provider fuses DequantizeLinear -> MatMul -> QuantizeLinear only for the per-tensor
# activation x activation MatMuls: every MatMul with per-channel S8 weights stays
# "DequantizeLinear(weight) -> FP32 MatMul", so each call dequantizes the weights again and then
# multiplies in FP32. Measured on the tiny student (ORT 1.32, 2-core Xeon with AMX): 10 of 16
# MatMuls left unfused, DequantizeLinear 58% of kernel time, 0.34x the FP32 graph's speed;
# with U8 activations all 14 quantized MatMuls become QLinearMatMul and the graph runs 2.2x
# faster than FP32 (experiments/speed-probes/speed-notes.md).
STATIC_ACTIVATION_TYPE = "uint8"
STATIC_WEIGHT_TYPE = "int8"


def quantize_static_onnx(src: str | Path, dst: str | Path, feeds: list[dict], per_channel: bool = True,
                         skip_gelu_matmuls: bool = True, exclude_blocks: Sequence[str] = ()) -> list[str]:
    """Static QDQ: weights INT8 (per channel, symmetric), activations UINT8 (asymmetric) with
    MinMax ranges from ``feeds``; see STATIC_ACTIVATION_TYPE for why unsigned.

    MatMuls and the embedding Gathers are quantized. (ORT's QDQ quantizer does not honour
    ``MatMulConstBOnly``, so the activation x activation MatMuls of attention, QK^T and PV, are
    quantized too; the export's parity and macro-F1 checks cover them.) With
    ``skip_gelu_matmuls`` the FFN output projections stay FP32 (see gelu_fed_matmuls): safer
    for accuracy, at a speed cost (those MatMuls then run in FP32). ``exclude_blocks``
    (export/blocks.py) stay FP32 too. Returns the names of the nodes left in FP32 on purpose.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = Path(src)
    with tempfile.TemporaryDirectory(dir=src.parent) as tmp, quiet():   # the workspace, not /tmp
        pre = Path(tmp) / "pre.onnx"
        try:   # shape inference + constant folding make the quantizer's job easier; optional
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - the raw graph quantizes too, just less cleanly
            shutil.copy(src, pre)
        excluded = gelu_fed_matmuls(pre) if skip_gelu_matmuls else []
        # Block names are read on the graph the quantizer sees (pre-processing may rename nodes).
        excluded += [n for n in blocks.resolve(blocks.onnx_blocks(pre), exclude_blocks) if n not in excluded]
        quantize_static(str(pre), str(dst), _reader(feeds), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        op_types_to_quantize=["MatMul", "Gather"], activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=excluded,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    return excluded


def _reader(feeds: list[dict]):
    """onnxruntime's CalibrationDataReader over a list of feed dicts."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    return Reader()


def to_openvino(onnx_path: str | Path, xml_path: str | Path, fp16: bool = False) -> None:
    """OpenVINO IR from the ONNX FP32 graph; ``fp16`` stores FP16-compressed weights."""
    import openvino as ov

    with quiet():
        model = ov.convert_model(str(onnx_path))
        ov.save_model(model, str(xml_path), compress_to_fp16=fp16)


def quantize_nncf(onnx_path: str | Path, xml_path: str | Path, feeds: list[dict],
                  exclude_blocks: Sequence[str] = ()) -> list[str]:
    """NNCF post-training INT8 (transformer scheme: SmoothQuant, mixed preset, bias correction);
    ``exclude_blocks`` (export/blocks.py) stay FP32 through NNCF's ignored scope. Returns the
    names of their operations."""
    import nncf
    import openvino as ov

    with quiet():
        nncf.set_log_level(logging.ERROR)
        model = ov.convert_model(str(onnx_path))
        excluded = blocks.resolve(blocks.openvino_blocks(model), exclude_blocks) if exclude_blocks else []
        scope = nncf.IgnoredScope(names=excluded, validate=False) if excluded else None
        quantized = nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(feeds), ignored_scope=scope)
        ov.save_model(quantized, str(xml_path), compress_to_fp16=False)
    return excluded


def model_files(folder: str | Path, model_file: str) -> list[Path]:
    """The files that make up the model (IR: .xml + .bin; ONNX: .onnx + external data beside it);
    ``model_file`` may lie in a subfolder (onnx/model.onnx)."""
    main = Path(folder) / model_file
    if main.suffix == ".xml":
        return [main, main.with_suffix(".bin")]
    return [main] + sorted(p for p in main.parent.iterdir() if p.name.startswith(main.name + "_")
                           or p.suffix in (".onnx_data", ".data"))


def calibration_feeds(encoder, texts: list[str]) -> list[dict]:
    """One feed per text at its natural length: padding would skew the activation ranges."""
    return [{k: np.ascontiguousarray(v) for k, v in encoder([t]).items()} for t in texts]



def static_onnx(model, path: Path) -> Path:
    """A static student's graph: token-id gather (+ hashed bigram rows) + masked mean (+ max or convolved n-grams;
    or attention) + L2 norm (each stacked member's own, or the mean's and the max's) + head, from its weights."""
    from edgedistill import graphs

    cfg = model.config
    head = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in model.linear_layers()]
    bigrams = None if model.bigrams is None else model.bigrams.weight.detach().numpy()
    query = None if model.attention_query is None else model.attention_query.detach().numpy()
    conv = None if model.conv is None else (model.conv.weight.detach().numpy(), model.conv.bias.detach().numpy(),
                                            model.conv_out.weight.detach().numpy().T)
    graph = graphs.static_classifier_graph(model.embeddings.weight.detach().numpy(), head, cfg.normalize,
                                           cfg.unk_token_id, bigrams=bigrams, members=cfg.members,
                                           pooling=model.pooling, attention_query=query, conv=conv)
    return graphs.save(graph, path)

