"""Typed config dataclasses built from YAML dicts, with every problem reported at once.

Each stage owns one dataclass (see edgedistill/recipe.py, export/config.py, bench/config.py);
this module only knows how to fill a dataclass from a dict, apply ``a.b=c`` overrides and
print the resolved result.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A recipe or override that cannot be used; the message lists every problem found."""


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple)) and (not args or all(_type_ok(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _accepts_float(tp: Any) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_accepts_float(a) for a in typing.get_args(tp))
    return tp is float


def _coerce(value: Any, tp: Any) -> Any:
    """What users type, as the field's type: PyYAML reads ``5e-5`` (no dot in the mantissa) as a
    string, so a float field takes a string that spells a finite number. Anything else is left
    as it is for the type check to report."""
    if isinstance(value, str) and _accepts_float(tp) and not _type_ok(value, tp):
        try:
            number = float(value.strip())
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def _describe(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {', '.join(f.name for f in dataclasses.fields(tp))}"
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (list, tuple) and typing.get_args(tp):
        return "a list of " + _describe(typing.get_args(tp)[0])
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def from_dict(cls: type, data: dict | None, where: str = "", errors: list[str] | None = None):
    """Build dataclass ``cls`` from ``data``; raise ConfigError listing every bad field.

    Nested dataclass fields are filled recursively; missing keys keep their defaults.
    """
    top = errors is None
    errors = [] if errors is None else errors
    if not isinstance(data or {}, dict):
        errors.append(f"{where.rstrip('.') or cls.__name__}: expected a mapping of "
                      f"{', '.join(f.name for f in dataclasses.fields(cls))}, got {type(data).__name__} {data!r}")
        if top:
            raise ConfigError(f"1 problem(s) in the {cls.__name__}:\n  - {errors[0]}")
        return cls()
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            errors.append(f"{where}{key}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        tp, path = hints[f.name], f"{where}{f.name}"
        value = _coerce(data[f.name], tp)
        sub = _dataclass_in(tp)
        if sub is not None and isinstance(value, dict):
            kwargs[f.name] = from_dict(sub, value, path + ".", errors)
        elif typing.get_origin(tp) is dict and isinstance(value, dict) and _dataclass_in(typing.get_args(tp)[1]):
            sub = _dataclass_in(typing.get_args(tp)[1])
            kwargs[f.name] = {k: from_dict(sub, v, f"{path}.{k}.", errors) for k, v in value.items()}
        elif not _type_ok(value, tp):
            errors.append(f"{path}: {value!r} is not {_describe(tp)}")
        else:
            kwargs[f.name] = float(value) if tp is float and isinstance(value, int) else value
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        errors.extend(f"{where}{msg}" for msg in validate())
    if top and errors:
        raise ConfigError(f"{len(errors)} problem(s) in the {cls.__name__}:\n  - " + "\n  - ".join(errors))
    return obj


def _dataclass_in(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    for a in typing.get_args(tp):
        if dataclasses.is_dataclass(a):
            return a
    return None


def parse_overrides(items: list[str] | None) -> dict:
    """Turn ``["train.epochs=1", "data.max_train=500"]`` into a nested dict (values YAML-parsed)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. train.epochs=1)")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} is set to a value by an earlier --set, so it has no keys")
        try:
            node[parts[-1]] = yaml.load(raw, Loader=StrictLoader)   # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:
            reason = yaml_problem(exc, where=False)
            raise ConfigError(f"--set {item!r}: the value {raw!r} is not a plain YAML value ({reason}); write a "
                              "number, true/false, null, a word, a quoted string or a [list], e.g. "
                              f"--set {key.strip()}=1") from None
    return out


def deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = deep_merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last one
    silently: a method given ``layers: odd`` and then ``layers: even`` would train with even)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is written twice in one mapping (first on line {seen[key] + 1}); "
                    "keep one of them", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)



def yaml_problem(exc: Exception, where: bool = True) -> str:
    """A YAML error in one line: ``line L, column C: what is wrong``."""
    mark = getattr(exc, "problem_mark", None)
    text = " ".join(str(getattr(exc, "problem", None) or exc).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {text}" if where and mark else text


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist (recipes live in configs/, e.g. configs/quickstart.yaml)")
    try:
        data = yaml.load(path.read_bytes().decode("utf-8"), Loader=StrictLoader)   # noqa: S506 - a SafeLoader
    except UnicodeDecodeError as exc:
        raise ConfigError(f"recipe {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8 "
                          "(e.g. iconv -f latin1 -t utf-8 old.yaml > new.yaml)") from None
    except OSError as exc:
        raise ConfigError(f"recipe {path} cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path} is not valid YAML: {yaml_problem(exc)}; fix that line") from None
    if not data:
        # An empty file would otherwise start the full default run (every preset text, no caps).
        raise ConfigError(f"recipe {path} is empty; a recipe names at least its run and data, e.g. copy "
                          "configs/quickstart.yaml and edit it")
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a mapping of sections (run, data, teacher, train, ...)")
    return data


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def dump(obj) -> str:
    """The resolved config as YAML, for printing at start and storing beside artifacts."""
    return yaml.safe_dump(to_dict(obj) if dataclasses.is_dataclass(obj) else obj, sort_keys=False)


def default_of(cls: type, name: str, none: str = "none") -> str:
    """A config field's default as a CLI help text shows it (``natural,16,64,128``), read from the
    dataclass, so a help line never restates a default that the config may change."""
    f = cls.__dataclass_fields__[name]
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if value is None:
        return none
    return ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)


def csv_list(value: str) -> list[str]:
    """A comma-separated command-line value as a list, blanks dropped (``--models odd, even``)."""
    return [v.strip() for v in value.split(",") if v.strip()]
