"""The method registry: every training method's name, order, colour and kind, in one place.

    from edgedistill.methods import METHODS, method, names, students
    method("hybrid").lora              # True
    students()                         # ('odd', 'even', 'auto', 'bottom', 'tiny', 'hybrid')

A method is either ``pretrained`` (built from the teacher's pre-trained backbone, as the teacher's
own fine-tuning is) or ``teacher_layers`` (a student built from the fine-tuned teacher's layers
and distilled against it). Tables, charts and file listings follow ``ORDER``. Adding a method
means adding one entry here (and its defaults in ``distill.config.default_methods``). Nothing
heavy is imported: the dashboard and the runtimes read this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Method:
    name: str
    kind: Literal["pretrained", "teacher_layers"]
    lora: bool            # trained through a LoRA adapter (the checkpoint holds the merged model)
    colour: str           # one colour per method on every chart and page

    @property
    def distilled(self) -> bool:
        """Trained against the fine-tuned teacher (needs the teacher's checkpoint first)."""
        return self.kind == "teacher_layers"


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
)}
ORDER: tuple[str, ...] = tuple(METHODS)
COLOURS: dict[str, str] = {name: m.colour for name, m in METHODS.items()}
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
    """Methods built from the fine-tuned teacher's layers and distilled against it, in order."""
    return tuple(n for n, m in METHODS.items() if m.distilled)


def uses_lora(name: str) -> bool:
    return name in METHODS and METHODS[name].lora


def rank(name: str) -> int:
    """Sort key: registry order, unknown names last."""
    return ORDER.index(name) if name in ORDER else len(ORDER)
