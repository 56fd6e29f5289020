# Classify texts with the static student's folder in model2vec (its model.safetensors + head.safetensors).
import json
import sys
from pathlib import Path

from model2vec.inference import StaticModelPipeline

folder, texts = sys.argv[1], sys.argv[2:]
# model2vec reads safetensors and JSON; only a legacy pipeline.skops (pickle) file would run code: refuse one.
if (Path(folder) / "pipeline.skops").exists():
    sys.exit(f"{folder} holds a legacy pipeline.skops: not loaded")
pipeline = StaticModelPipeline.from_pretrained(folder)
labels = pipeline.predict(texts)
probs = pipeline.predict_proba(texts)
for text, label, row in zip(texts, labels, probs):
    print(json.dumps({"text": text, "label": str(label), "probs": row.tolist()}))
