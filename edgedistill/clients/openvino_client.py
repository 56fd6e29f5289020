# Classify texts with an exported OpenVINO (or ONNX) folder: OpenVINO Core + tokenizers.
import json
import os
import sys

import numpy as np
import openvino as ov
from tokenizers import Tokenizer

folder, texts = sys.argv[1], sys.argv[2:]
config = json.load(open(os.path.join(folder, "config.json")))
tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))   # truncates and pads as the export did
model = os.path.join(folder, "openvino_model.xml")
if not os.path.exists(model):
    model = os.path.join(folder, "onnx", "model.onnx")
# f32: on CPUs with AVX512-BF16 or AMX OpenVINO otherwise computes in bf16 (about 1e-2 off).
compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
encodings = tokenizer.encode_batch(texts)
inputs = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
          "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
          "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
logits = compiled({p.get_any_name(): inputs[p.get_any_name()] for p in compiled.inputs})[compiled.output(0)]
for text, row in zip(texts, logits):
    label = config["id2label"][str(int(row.argmax()))]
    print(json.dumps({"text": text, "label": label, "logits": row.tolist()}))
