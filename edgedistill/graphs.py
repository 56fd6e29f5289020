"""Small ONNX graphs built from plain arrays: models that need no torch and no exporter to serve.

    static_classifier_graph(table, head, normalize=True, unk_id=1)   # token ids -> mean of rows -> MLP head
    static_classifier_graph(table, head, True, 1, bigrams=pairs)     # ... plus hashed bigram rows
    tfidf_graph(unigrams, bigrams, idf, coef, intercept)             # token ids -> TF-IDF -> linear model

Both take the ``input_ids`` / ``attention_mask`` that ``edgedistill.runtime.TextEncoder`` makes
from the model's ``tokenizer.json``, so ONNX Runtime serves them through the one runtime interface
(``OrtRuntime``) and the bench times them like every other artifact. The static student's export,
the model2vec baseline and the TF-IDF baseline are written here; each caller checks its graph's
outputs against the model it came from before keeping it. Only numpy and onnx are imported.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 18
INPUTS = ("input_ids", "attention_mask")


def _model(nodes, inits, inputs, opset: int = OPSET, name: str = "edgedistill"):
    import onnx
    from onnx import TensorProto, helper

    ins = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in inputs]
    out = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "labels"])]
    graph = helper.make_graph(nodes, name, ins, out, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgedistill")
    model.ir_version = min(model.ir_version, 9)     # loadable by older ONNX Runtime builds on a target
    onnx.checker.check_model(model)
    return model


def _init(name: str, array) -> object:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(array), name)


def _head_nodes(source: str, head: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list, list]:
    """Linear layers (weight (out, in), bias (out,)) with ReLU between them, as MatMul + Add
    (MatMul, not Gemm, so dynamic INT8 quantizes them)."""
    from onnx import helper

    nodes, inits, x = [], [], source
    for i, (w, b) in enumerate(head):
        inits += [_init(f"head{i}.weight", np.asarray(w, np.float32).T.copy()),
                  _init(f"head{i}.bias", np.asarray(b, np.float32))]
        nodes += [helper.make_node("MatMul", [x, f"head{i}.weight"], [f"head{i}.mm"]),
                  helper.make_node("Add", [f"head{i}.mm", f"head{i}.bias"],
                                   ["logits" if i == len(head) - 1 else f"head{i}.out"])]
        x = f"head{i}.out"
        if i < len(head) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"head{i}.relu"]))
            x = f"head{i}.relu"
    return nodes, inits


def static_classifier_graph(table: np.ndarray, head: list[tuple[np.ndarray, np.ndarray]], normalize: bool,
                            unk_id: int | None = None, token_mapping: np.ndarray | None = None,
                            token_weights: np.ndarray | None = None, bigrams: np.ndarray | None = None,
                            members: int = 1, pooling: str = "mean", attention_query: np.ndarray | None = None,
                            conv: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None):
    """logits = head(normalize?(sum_t w_t * table[map[id_t]] / n)) over the real tokens of each text.

    Real tokens are those the attention mask keeps, minus ``unk_id`` (model2vec drops unknown tokens
    before pooling); n counts them, and a text with none pools to zeros (as torch's EmbeddingBag does).
    ``bigrams`` (buckets, dims) adds, for each pair of consecutive real tokens (a, b), its row
    (a * BIGRAM_MULTIPLIER + b) mod buckets to the sum (``edgedistill.static_model.bigram_rows``).
    ``normalize`` divides the pooled vector by its L2 norm (F.normalize: the norm clamped at 1e-12); with
    ``members`` > 1 (students stacked side by side, ``StaticClassifier.stack``) each member's equal share of
    the columns is divided by its own norm. ``pooling="mean-max"`` puts each column's max over the real tokens'
    rows beside the mean (zeros for a text with none), each half normalised on its own; ``pooling="attention"``
    weighs the real tokens' rows by softmax over the text of (row . ``attention_query``) instead of 1 / n;
    ``pooling="conv"`` adds to the mean ``conv`` = (weight (out, dims, width), bias, out_map (dims, out)): the
    mean over the real tokens of ReLU(a convolution over the rows, padding and unknown tokens zeroed, same
    length), times ``out_map`` (``edgedistill.static_model.StaticClassifier.pool``).
    """
    from onnx import TensorProto, helper

    table = np.asarray(table, np.float32)
    nodes, inits = [], [_init("table", table), _init("axis1", np.array([1], np.int64)),
                        _init("axis2", np.array([2], np.int64))]
    ids = "input_ids"
    if token_mapping is not None and not np.array_equal(token_mapping, np.arange(len(token_mapping))):
        inits.append(_init("token_mapping", np.asarray(token_mapping, np.int64)))
        nodes.append(helper.make_node("Gather", ["token_mapping", "input_ids"], ["mapped_ids"], axis=0))
        ids = "mapped_ids"
    nodes += [helper.make_node("Gather", ["table", ids], ["embedded"], axis=0),
              helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT)]
    keep = "mask_f"
    if unk_id is not None:
        inits.append(_init("unk_id", np.array(unk_id, np.int64)))
        nodes += [helper.make_node("Equal", ["input_ids", "unk_id"], ["is_unk"]),
                  helper.make_node("Not", ["is_unk"], ["not_unk"]),
                  helper.make_node("Cast", ["not_unk"], ["not_unk_f"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", ["mask_f", "not_unk_f"], ["keep"])]
        keep = "keep"
    if pooling == "attention":
        if attention_query is None or bigrams is not None or token_weights is not None:
            raise ValueError("static_classifier_graph: attention pooling takes its query, and no bigram rows or "
                             "token weights")
        inits += [_init("attention_query", np.asarray(attention_query, np.float32)),
                  _init("zero", np.array(0.0, np.float32)), _init("masked_score", np.array(-1e4, np.float32))]
        nodes += [helper.make_node("MatMul", ["embedded", "attention_query"], ["scores"]),
                  helper.make_node("Greater", [keep, "zero"], ["is_real"]),
                  helper.make_node("Where", ["is_real", "scores", "masked_score"], ["real_scores"]),
                  helper.make_node("Softmax", ["real_scores"], ["softmax_weights"], axis=1),
                  helper.make_node("Mul", ["softmax_weights", keep], ["attention_weights"]),
                  helper.make_node("Unsqueeze", ["attention_weights", "axis2"], ["attention_weights3"]),
                  helper.make_node("Mul", ["embedded", "attention_weights3"], ["attended"]),
                  helper.make_node("ReduceSum", ["attended", "axis1"], ["pooled"], keepdims=0)]
        return _static_head(nodes, inits, "pooled", 1, table.shape[1], normalize, head)
    weight = keep
    if token_weights is not None:
        inits.append(_init("token_weights", np.asarray(token_weights, np.float32)))
        nodes += [helper.make_node("Gather", ["token_weights", "input_ids"], ["tw"], axis=0),
                  helper.make_node("Mul", ["tw", keep], ["weight"])]
        weight = "weight"
    nodes += [helper.make_node("Unsqueeze", [weight, "axis2"], ["weight3"]),
              helper.make_node("Mul", ["embedded", "weight3"], ["weighted"]),
              helper.make_node("ReduceSum", ["weighted", "axis1"], ["summed"], keepdims=0)]
    summed = "summed"
    if bigrams is not None:
        b_nodes, b_inits = _bigram_nodes(np.asarray(bigrams, np.float32), keep)
        nodes += b_nodes + [helper.make_node("Add", ["summed", "bigram_sum"], ["summed_all"])]
        inits += b_inits
        summed = "summed_all"
    inits.append(_init("one", np.array(1.0, np.float32)))
    nodes += [helper.make_node("ReduceSum", [keep, "axis1"], ["count"], keepdims=1),
              helper.make_node("Max", ["count", "one"], ["count1"]),
              helper.make_node("Div", [summed, "count1"], ["pooled"])]
    pooled, groups, width = "pooled", members, table.shape[1]
    if pooling == "mean-max":
        inits += [_init("zero", np.array(0.0, np.float32)), _init("minus_inf", np.array(-np.inf, np.float32))]
        nodes += [helper.make_node("Unsqueeze", [keep, "axis2"], ["keep3"]),
                  helper.make_node("Greater", ["keep3", "zero"], ["is_real3"]),
                  helper.make_node("Where", ["is_real3", "embedded", "minus_inf"], ["real_rows"]),
                  helper.make_node("ReduceMax", ["real_rows", "axis1"], ["largest"], keepdims=0),
                  helper.make_node("Greater", ["count", "zero"], ["has_real"]),
                  helper.make_node("Where", ["has_real", "largest", "zero"], ["largest_or_zero"]),
                  helper.make_node("Concat", ["pooled", "largest_or_zero"], ["pooled_mean_max"], axis=1)]
        pooled, groups, width = "pooled_mean_max", 2, 2 * width
    elif pooling == "conv":
        if conv is None or bigrams is not None or token_weights is not None:
            raise ValueError("static_classifier_graph: conv pooling takes its weights, and no bigram rows or token "
                             "weights")
        conv_weight, conv_bias, out_map = (np.asarray(a, np.float32) for a in conv)
        pad = conv_weight.shape[2] // 2
        inits += [_init("conv_weight", conv_weight), _init("conv_bias", conv_bias), _init("conv_out", out_map)]
        nodes += [helper.make_node("Unsqueeze", [keep, "axis2"], ["conv_keep3"]),
                  helper.make_node("Mul", ["embedded", "conv_keep3"], ["kept_rows"]),
                  helper.make_node("Transpose", ["kept_rows"], ["kept_rows_t"], perm=[0, 2, 1]),
                  helper.make_node("Conv", ["kept_rows_t", "conv_weight", "conv_bias"], ["grams_t"],
                                   kernel_shape=[conv_weight.shape[2]], pads=[pad, pad]),
                  helper.make_node("Relu", ["grams_t"], ["grams_relu_t"]),
                  helper.make_node("Transpose", ["grams_relu_t"], ["grams"], perm=[0, 2, 1]),
                  helper.make_node("Mul", ["grams", "conv_keep3"], ["kept_grams"]),
                  helper.make_node("ReduceSum", ["kept_grams", "axis1"], ["grams_sum"], keepdims=0),
                  helper.make_node("Div", ["grams_sum", "count1"], ["grams_mean"]),
                  helper.make_node("MatMul", ["grams_mean", "conv_out"], ["grams_pooled"]),
                  helper.make_node("Add", ["pooled", "grams_pooled"], ["pooled_conv"])]
        pooled = "pooled_conv"
    elif pooling != "mean":
        raise ValueError(f"static_classifier_graph: pooling {pooling!r} is not mean, mean-max, attention or conv")
    return _static_head(nodes, inits, pooled, groups, width, normalize, head)


def _static_head(nodes: list, inits: list, pooled: str, groups: int, width: int, normalize: bool,
                 head: list[tuple[np.ndarray, np.ndarray]]):
    """The static graph from its pooled vector on: each of ``groups`` equal shares of its ``width`` columns
    divided by its own L2 norm (F.normalize: the norm clamped at 1e-12) where ``normalize`` asks, then the head."""
    from onnx import helper

    if normalize and groups > 1:
        inits += [_init("eps", np.array(1e-12, np.float32)),
                  _init("grouped_shape", np.array([0, groups, width // groups], np.int64)),
                  _init("flat_shape", np.array([0, width], np.int64))]
        nodes += [helper.make_node("Reshape", [pooled, "grouped_shape"], ["grouped"]),
                  helper.make_node("ReduceL2", ["grouped", "axis2"], ["norm"], keepdims=1),
                  helper.make_node("Max", ["norm", "eps"], ["norm_eps"]),
                  helper.make_node("Div", ["grouped", "norm_eps"], ["grouped_normalized"]),
                  helper.make_node("Reshape", ["grouped_normalized", "flat_shape"], ["normalized"])]
        pooled = "normalized"
    elif normalize:
        inits.append(_init("eps", np.array(1e-12, np.float32)))
        nodes += [helper.make_node("ReduceL2", [pooled, "axis1"], ["norm"], keepdims=1),
                  helper.make_node("Max", ["norm", "eps"], ["norm_eps"]),
                  helper.make_node("Div", [pooled, "norm_eps"], ["normalized"])]
        pooled = "normalized"
    head_nodes, head_inits = _head_nodes(pooled, head)
    return _model(nodes + head_nodes, inits + head_inits, INPUTS, name="static-classifier")


def _bigram_nodes(bigrams: np.ndarray, keep: str) -> tuple[list, list]:
    """The summed hashed-bigram rows of each text ("bigram_sum", (batch, dims)): pairs of consecutive
    tokens, counted where the ``keep`` weight of both tokens is 1. A one-token text has no pair: the
    slices are empty and their sum is zero."""
    from onnx import helper

    from edgedistill.static_model import BIGRAM_MULTIPLIER

    inits = [_init("bigram_table", bigrams), _init("bigram_multiplier", np.array(BIGRAM_MULTIPLIER, np.int64)),
             _init("bigram_buckets", np.array(len(bigrams), np.int64)),
             _init("slice_0", np.array([0], np.int64)), _init("slice_1", np.array([1], np.int64)),
             _init("slice_last", np.array([-1], np.int64)),
             _init("slice_end", np.array([np.iinfo(np.int64).max], np.int64))]
    first, second = ["slice_0", "slice_last", "axis1"], ["slice_1", "slice_end", "axis1"]
    nodes = [helper.make_node("Slice", ["input_ids", *first], ["ids_first"]),
             helper.make_node("Slice", ["input_ids", *second], ["ids_second"]),
             helper.make_node("Mul", ["ids_first", "bigram_multiplier"], ["ids_scaled"]),
             helper.make_node("Add", ["ids_scaled", "ids_second"], ["pair_key"]),
             helper.make_node("Mod", ["pair_key", "bigram_buckets"], ["pair_rows"]),
             helper.make_node("Gather", ["bigram_table", "pair_rows"], ["pair_vectors"], axis=0),
             helper.make_node("Slice", [keep, *first], ["keep_first"]),
             helper.make_node("Slice", [keep, *second], ["keep_second"]),
             helper.make_node("Mul", ["keep_first", "keep_second"], ["pair_keep"]),
             helper.make_node("Unsqueeze", ["pair_keep", "axis2"], ["pair_keep3"]),
             helper.make_node("Mul", ["pair_vectors", "pair_keep3"], ["pair_weighted"]),
             helper.make_node("ReduceSum", ["pair_weighted", "axis1"], ["bigram_sum"], keepdims=0)]
    return nodes, inits


def tfidf_graph(unigrams: dict[int, int], bigrams: dict[tuple[int, int], int], idf: np.ndarray,
                coef: np.ndarray, intercept: np.ndarray):
    """logits = coef . l2normalize(tf * idf) + intercept, the n-gram counts taken by ONNX's
    TfIdfVectorizer over token ids.

    ``unigrams`` maps a token id to its feature column, ``bigrams`` a pair of consecutive token ids
    to its column (scikit-learn's ``vocabulary_``, through the tokenizer's word ids). Padding and
    unknown words have ids outside both, so they count nothing and break no pair that scikit-learn
    would form. A binary linear model (one row of ``coef``) gives the logits [0, z], whose softmax
    is scikit-learn's predict_proba.
    """
    from onnx import helper

    idf = np.asarray(idf, np.float32)
    coef = np.atleast_2d(np.asarray(coef, np.float32))
    intercept = np.atleast_1d(np.asarray(intercept, np.float32))
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros(1, np.float32), intercept])
    uni = sorted(unigrams.items())
    bi = sorted(bigrams.items())
    pool = [i for i, _ in uni] + [x for pair, _ in bi for x in pair]
    indexes = [c for _, c in uni] + [c for _, c in bi]
    n_features = len(idf)
    if sorted(indexes) != list(range(n_features)):
        raise ValueError(f"the n-gram columns must cover 0..{n_features - 1} exactly once")
    nodes = [helper.make_node("TfIdfVectorizer", ["input_ids"], ["tf"], mode="TF", min_gram_length=1,
                              max_gram_length=2 if bi else 1, max_skip_count=0,
                              ngram_counts=[0, len(uni)] if bi else [0], ngram_indexes=indexes, pool_int64s=pool),
             helper.make_node("Mul", ["tf", "idf"], ["tfidf"]),
             helper.make_node("ReduceL2", ["tfidf", "axis1"], ["norm"], keepdims=1),
             # scikit-learn's normalize leaves an all-zero row at zero: dividing by 1 does the same.
             helper.make_node("Equal", ["norm", "zero"], ["is_zero"]),
             helper.make_node("Where", ["is_zero", "one", "norm"], ["safe_norm"]),
             helper.make_node("Div", ["tfidf", "safe_norm"], ["features"])]
    inits = [_init("idf", idf), _init("axis1", np.array([1], np.int64)), _init("zero", np.array(0.0, np.float32)),
             _init("one", np.array(1.0, np.float32))]
    head_nodes, head_inits = _head_nodes("features", [(coef, intercept)])
    return _model(nodes + head_nodes, inits + head_inits, ("input_ids",), name="tfidf-logistic-regression")


def save(model, path: str | Path) -> Path:
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def quantize_int8(src: str | Path, dst: str | Path) -> None:
    """Dynamic INT8: the embedding table (Gather) and the head's MatMuls, weights in int8 per channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), op_types_to_quantize=["Gather", "MatMul"], weight_type=QuantType.QInt8,
                     per_channel=False)
