"""The method registry: every training method's name, order, colour and kind, in one place.

    from edgedistill.methods import METHODS, method, names, students
    method("hybrid").lora              # True
    students()                         # ('odd', 'even', 'auto', 'bottom', 'tiny', 'hybrid', 'static')
    is_baseline("tfidf")               # True

A method is ``pretrained`` (built from the teacher's pre-trained backbone, as the teacher's own
fine-tuning is), ``teacher_layers`` (a student built from the fine-tuned teacher's layers and
distilled against it) or ``static`` (a static embedding table distilled from the fine-tuned
teacher's backbone by model2vec, then trained against the teacher like the other students).
Tables, charts and file listings follow ``ORDER``. Adding a method means adding one entry here
(and its defaults in ``edgedistill.recipe.default_methods``).

``BASELINES`` are what a user would pick instead of distilling: trained on the run's own labelled
split by their own libraries (distill/baselines.py), never from the fine-tuned teacher, and
reported beside the methods, marked as baselines. Nothing heavy is imported: the dashboard and the
runtimes read this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Method:
    name: str
    kind: Literal["pretrained", "teacher_layers", "static"]
    lora: bool            # trained through a LoRA adapter (the checkpoint holds the merged model)
    colour: str           # one colour per method on every chart and page

    @property
    def distilled(self) -> bool:
        """Trained against the fine-tuned teacher (needs the teacher's checkpoint first)."""
        return self.kind in ("teacher_layers", "static")


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("teacher", "pretrained", lora=False, colour="#1f2937"),
    Method("odd", "teacher_layers", lora=False, colour="#2563eb"),
    Method("even", "teacher_layers", lora=False, colour="#16a34a"),
    # Opt-in comparisons for the choice of layers: the analysis's pick and the plain bottom half.
    Method("auto", "teacher_layers", lora=False, colour="#ca8a04"),
    Method("bottom", "teacher_layers", lora=False, colour="#be185d"),
    Method("tiny", "teacher_layers", lora=False, colour="#0891b2"),
    Method("lora", "pretrained", lora=True, colour="#ea580c"),
    Method("hybrid", "teacher_layers", lora=True, colour="#9333ea"),
    Method("static", "static", lora=False, colour="#0d9488"),
)}


@dataclass(frozen=True)
class Baseline:
    name: str
    library: str          # what trains it, as its users run it
    colour: str


BASELINES: dict[str, Baseline] = {b.name: b for b in (
    Baseline("tfidf", "scikit-learn (TF-IDF + logistic regression)", colour="#9ca3af"),
    Baseline("model2vec", "model2vec (static embeddings of the pre-trained teacher + classifier)", colour="#a8a29e"),
    Baseline("setfit", "setfit (contrastive fine-tuning of the pre-trained teacher + logistic regression)",
             colour="#d6d3d1"),
)}
ORDER: tuple[str, ...] = tuple(METHODS)
COLOURS: dict[str, str] = {name: m.colour for name, m in METHODS.items()} | {
    name: b.colour for name, b in BASELINES.items()}
TEACHER = "teacher"   # the reference every other method is compared with


def method(name: str) -> Method:
    """The registry entry of ``name``; KeyError names the known methods."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r} (known: {', '.join(ORDER)})") from None


def names() -> tuple[str, ...]:
    return ORDER


def students() -> tuple[str, ...]:
    """Methods distilled against the fine-tuned teacher (built from its layers or its static embeddings), in order."""
    return tuple(n for n, m in METHODS.items() if m.distilled)


def layer_students() -> tuple[str, ...]:
    """Students built from a selection of the fine-tuned teacher's layers (they need ``layers``)."""
    return tuple(n for n, m in METHODS.items() if m.kind == "teacher_layers")


def is_static(name: str) -> bool:
    return name in METHODS and METHODS[name].kind == "static"


def is_baseline(name: str) -> bool:
    return name in BASELINES


def uses_lora(name: str) -> bool:
    return name in METHODS and METHODS[name].lora


def rank(name: str) -> int:
    """Sort key: registry order, then the baselines, unknown names last."""
    if name in ORDER:
        return ORDER.index(name)
    baselines = tuple(BASELINES)
    return len(ORDER) + (baselines.index(name) if name in baselines else len(baselines))
