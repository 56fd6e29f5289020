// Classify texts with an exported folder in Node: transformers.js's text-classification pipeline.
import path from 'node:path';
import { env, pipeline } from '@huggingface/transformers';

env.allowRemoteModels = false;            // a local folder, nothing fetched
env.localModelPath = '';
const [folder, ...texts] = process.argv.slice(2);
// config.json's transformers.js_config names the file: onnx/model.onnx, or onnx/model_quantized.onnx (q8).
const classify = await pipeline('text-classification', path.resolve(folder));
for (const text of texts) {
  const [best] = await classify(text);
  const inputs = await classify.tokenizer(text);
  const { logits } = await classify.model(inputs);
  console.log(JSON.stringify({ text, label: best.label, logits: Array.from(logits.data) }));
}
