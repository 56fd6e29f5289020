"""The ``static`` student: a static embedding table distilled from the fine-tuned teacher, and a small head.

    model, tokenizer = build_static_student("runs/x/models/teacher", label_names, dims=256, hidden=256)

model2vec's own distillation (one forward pass of the teacher's backbone per vocabulary token, PCA,
Zipf weighting) turns the FINE-TUNED teacher's backbone into a table of token vectors; the student
pools a text's token vectors (mean over real tokens, unknown tokens dropped, then L2-normalised, as
model2vec's classifier does) and classifies with a small MLP head. Table and head are then trained by
the project's one training loop with the distillation loss on labelled and teacher-labelled texts,
like the other students. ``StaticClassifier`` follows the Hugging Face calling convention the loop
and ``TorchRuntime`` use (``forward(input_ids, attention_mask) -> .logits``, ``save_pretrained``);
``edgedistill.graphs.static_classifier_graph`` is its ONNX form.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

MODEL_TYPE = "edgedistill-static"
WEIGHTS = "model.safetensors"


class StaticConfig(SimpleNamespace):
    """The few settings a StaticClassifier is rebuilt from (config.json)."""

    def to_dict(self) -> dict:
        return dict(vars(self))

    def to_json_file(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


class StaticClassifier(nn.Module):
    def __init__(self, vocab_size: int, dims: int, label_names: list[str], hidden: int = 256,
                 unk_token_id: int | None = None, normalize: bool = True):
        super().__init__()
        id2label = {str(i): n for i, n in enumerate(label_names)}
        self.config = StaticConfig(model_type=MODEL_TYPE, architectures=["StaticClassifier"], vocab_size=vocab_size,
                                   dims=dims, hidden=hidden, num_labels=len(label_names), id2label=id2label,
                                   label2id={n: int(i) for i, n in id2label.items()}, unk_token_id=unk_token_id,
                                   normalize=normalize)
        self.embeddings = nn.Embedding(vocab_size, dims)
        layers = [nn.Linear(dims, hidden), nn.ReLU(), nn.Linear(hidden, len(label_names))] if hidden else \
            [nn.Linear(dims, len(label_names))]
        self.head = nn.Sequential(*layers)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        keep = torch.ones_like(input_ids, dtype=torch.float32) if attention_mask is None else attention_mask.float()
        if self.config.unk_token_id is not None:
            keep = keep * (input_ids != self.config.unk_token_id).float()
        summed = (self.embeddings(input_ids) * keep.unsqueeze(-1)).sum(dim=1)
        pooled = summed / keep.sum(dim=1, keepdim=True).clamp(min=1.0)   # no real token: a zero vector
        return nn.functional.normalize(pooled, dim=-1) if self.config.normalize else pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, **_) -> SimpleNamespace:
        # token_type_ids and the like are accepted and ignored: a static table has no segments.
        return SimpleNamespace(logits=self.head(self.pool(input_ids, attention_mask)), hidden_states=None)

    def linear_layers(self) -> list[nn.Linear]:
        return [m for m in self.head if isinstance(m, nn.Linear)]

    def save_pretrained(self, folder) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.to_json_file(folder / "config.json")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(folder / WEIGHTS))

    @classmethod
    def load(cls, folder) -> StaticClassifier:
        """Its own safetensors file and config.json (no transformers loader, so no remote code path)."""
        from safetensors.torch import load_file

        cfg = json.loads((Path(folder) / "config.json").read_text())
        labels = [cfg["id2label"][str(i)] for i in range(cfg["num_labels"])]
        model = cls(cfg["vocab_size"], cfg["dims"], labels, cfg["hidden"], cfg.get("unk_token_id"),
                    cfg.get("normalize", True))
        model.load_state_dict(load_file(str(Path(folder) / WEIGHTS)))
        return model.eval()


def is_static_checkpoint(folder) -> bool:
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text()).get("model_type") == MODEL_TYPE
    except (OSError, ValueError):
        return False


def distil_static(source: str, dims: int):
    """model2vec's own distillation of a local model folder (the backbone of a classifier folder):
    one forward pass per vocabulary token, PCA to ``dims``, Zipf (SIF) weighting. float32."""
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise ImportError(f"model2vec's distillation is needed here ({exc}); install it with `pip install --no-deps "
                          "model2vec==0.10.0 skeletoken==0.6.1` beside `pip install '.[baselines]'` (make install "
                          "does both)") from None
    return distill(source, pca_dims=dims, quantize_to="float32")


def artifact_tokenizer_json(tokenizer_json: str) -> str:
    """A static model's tokenizer.json as it is served: no special tokens (a static model pools the
    text's own tokens), truncation and padding left to the caller."""
    doc = json.loads(tokenizer_json)
    doc["post_processor"] = None
    doc["truncation"] = None
    doc["padding"] = None
    return json.dumps(doc, ensure_ascii=False)


def unk_token_id(tokenizer) -> int | None:
    """The id of the tokenizer model's unknown token (model2vec drops it before pooling)."""
    unk = json.loads(tokenizer.to_str())["model"].get("unk_token")
    return tokenizer.token_to_id(unk) if unk is not None else None


def hf_tokenizer(tokenizer):
    """A ``tokenizers.Tokenizer`` as the fast Hugging Face tokenizer the training loop calls."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(artifact_tokenizer_json(tokenizer.to_str()))
    specials = {k: t for k, t in (("pad_token", "[PAD]"), ("unk_token", "[UNK]")) if backend.token_to_id(t) is not None}
    if "pad_token" not in specials:
        specials["pad_token"] = backend.id_to_token(0)
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_input_names=["input_ids", "attention_mask"],
                                   **specials)


def build_static_student(teacher_dir: str | Path, label_names: list[str], dims: int, hidden: int):
    """The static student before training: model2vec's table of the fine-tuned teacher's backbone,
    a freshly initialised head, and its tokenizer."""
    static = distil_static(str(teacher_dir), dims)
    vectors = torch.as_tensor(static.embedding, dtype=torch.float32)
    model = StaticClassifier(vectors.shape[0], vectors.shape[1], label_names, hidden,
                             unk_token_id(static.tokenizer), normalize=True)
    with torch.no_grad():
        model.embeddings.weight.copy_(vectors)
    return model, hf_tokenizer(static.tokenizer)
