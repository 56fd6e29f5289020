# Classify texts with the static student's folder in model2vec (its model.safetensors + head.safetensors).
import json
import sys

from model2vec.inference import StaticModelPipeline

folder, texts = sys.argv[1], sys.argv[2:]
pipeline = StaticModelPipeline.from_pretrained(folder)
labels = pipeline.predict(texts)
probs = pipeline.predict_proba(texts)
for text, label, row in zip(texts, labels, probs):
    print(json.dumps({"text": text, "label": str(label), "probs": row.tolist()}))
