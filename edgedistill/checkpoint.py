"""Loading a model folder safely, and a trained checkpoint back into memory.

A user's model folder is the toolkit's attack surface, so every transformers load in the project
goes through ``SAFE_LOAD`` / ``SAFE_WEIGHTS`` here: no code from the folder is run, no pickle in it
is unpickled. ``load_checkpoint`` reads ``runs/<run>/models/<method>`` back (transformers, an
adapter-only peft folder, or the static student); the runtime, export and the GPU pack use it.
torch, transformers and peft are imported only when a checkpoint is loaded.
"""
from __future__ import annotations

from pathlib import Path


class ModelError(ValueError):
    """A model that cannot be loaded or reshaped; the message says how to fix it."""


# Every transformers load in the project goes through these: a user's model folder is the
# toolkit's attack surface, so no code from it is run and no pickle in it is unpickled.
SAFE_LOAD = {"trust_remote_code": False}
SAFE_WEIGHTS = {**SAFE_LOAD, "use_safetensors": True}
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack",
                  "model.ckpt.index")


def convert_hint(weights: str | Path) -> str:
    """How a user who trusts a pickle checkpoint turns it into safetensors, once, by hand."""
    weights = Path(weights)
    return ("Use the model's safetensors weights (model.safetensors), or, only if you trust where the file comes "
            "from, convert it: python -c \"import torch; from safetensors.torch import save_file; "
            f"sd = torch.load('{weights}', weights_only=False); save_file({{k: v.contiguous() for k, v in sd.items() "
            f"if isinstance(v, torch.Tensor)}}, '{weights.parent}/model.safetensors')\" and move the .bin away.")


def check_weights(folder: Path) -> None:
    """A local model folder must hold safetensors weights; pickle checkpoints are refused unread."""
    folder = Path(folder)
    if any(folder.glob("*.safetensors")) or any(folder.glob("*.safetensors.index.json")):
        return
    pickles = [name for name in PICKLE_WEIGHTS if (folder / name).is_file()]
    if pickles:
        raise ModelError(f"{folder / pickles[0]} was refused as unsafe: edgedistill loads weights only from "
                         "safetensors files, since a pickle checkpoint can run code when it is loaded. "
                         + convert_hint(folder / pickles[0]))
    raise ModelError(f"{folder} holds no model weights (no *.safetensors file); "
                     "point to a folder written by save_pretrained")


def merged(model):
    """A plain transformers model: LoRA weights folded in (unmerged peft models export badly)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def load_checkpoint(folder: str | Path):
    """Load a ``runs/<run>/models/<method>`` checkpoint (merging an adapter-only folder)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgedistill.static_model import StaticClassifier, is_static_checkpoint

    folder = Path(folder)
    if is_static_checkpoint(folder):
        from transformers import PreTrainedTokenizerFast

        return StaticClassifier.load(folder), PreTrainedTokenizerFast.from_pretrained(folder, **SAFE_LOAD)
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        from peft import AutoPeftModelForSequenceClassification

        model = merged(AutoPeftModelForSequenceClassification.from_pretrained(folder, **SAFE_WEIGHTS))
    elif (folder / "config.json").is_file():
        model = AutoModelForSequenceClassification.from_pretrained(folder, **SAFE_WEIGHTS)
    else:
        raise ModelError(f"{folder} is not a checkpoint: no config.json (or adapter_config.json); "
                         "train it first with `edgedistill train <recipe>`")
    return model.eval(), AutoTokenizer.from_pretrained(folder, use_fast=True, **SAFE_LOAD)
