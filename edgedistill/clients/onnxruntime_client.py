# Classify texts with an exported folder: onnxruntime + tokenizers, no other library.
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

folder, texts = sys.argv[1], sys.argv[2:]
config = json.load(open(os.path.join(folder, "config.json")))
# tokenizer.json truncates and pads as the export did.
tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
name = "model.onnx" if os.path.exists(os.path.join(folder, "onnx", "model.onnx")) else "model_quantized.onnx"
session = ort.InferenceSession(os.path.join(folder, "onnx", name), providers=["CPUExecutionProvider"])
encodings = tokenizer.encode_batch(texts)
inputs = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
          "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
          "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
logits = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})[0]
for text, row in zip(texts, logits):
    label = config["id2label"][str(int(row.argmax()))]
    print(json.dumps({"text": text, "label": label, "logits": row.tolist()}))
