"""The static student's model class: a token-vector table (and optionally hashed bigram rows), masked mean
(or mean-and-max, attention, or mean plus convolved n-grams: ``edgedistill.recipe.STATIC_POOLINGS``) pooling
and a small head; or an ensemble of such students stacked into one model (``StaticClassifier.stack``).

It follows the Hugging Face calling convention the training loop and ``TorchRuntime`` use
(``forward(input_ids, attention_mask) -> .logits``, ``save_pretrained``) and loads from its own
safetensors file and config.json (no transformers loader, so no remote-code path). How it is built
and trained is the ``static`` method's business (``distill/static.py``);
``edgedistill.graphs.static_classifier_graph`` is its ONNX form.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from edgedistill.recipe import STATIC_CONV_WIDTH, STATIC_POOLINGS_WITHOUT_BIGRAMS
from edgedistill.recipe import STATIC_POOLINGS as POOLINGS

MODEL_TYPE = "edgedistill-static"
WEIGHTS = "model.safetensors"
# A pair of consecutive token ids (a, b) reads row (a * BIGRAM_MULTIPLIER + b) mod buckets of the bigram
# table. The ONNX graph (edgedistill.graphs.static_classifier_graph) computes the same rows: change both or
# neither. A prime far above any vocabulary keeps pairs that share a first token apart.
BIGRAM_MULTIPLIER = 1_000_003


def bigram_rows(input_ids: torch.Tensor, buckets: int) -> torch.Tensor:
    """The bigram-table row of each pair of consecutive tokens: (batch, sequence - 1)."""
    return (input_ids[:, :-1] * BIGRAM_MULTIPLIER + input_ids[:, 1:]) % buckets


class StaticConfig(SimpleNamespace):
    """The few settings a StaticClassifier is rebuilt from (config.json)."""

    def to_dict(self) -> dict:
        return dict(vars(self))

    def to_json_file(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


class StaticClassifier(nn.Module):
    def __init__(self, vocab_size: int, dims: int, label_names: list[str], hidden: int = 256,
                 unk_token_id: int | None = None, normalize: bool = True, bigram_buckets: int = 0,
                 members: int = 1, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"StaticClassifier: pooling {pooling!r} must be one of {', '.join(POOLINGS)}")
        if pooling != "mean" and members != 1:
            raise ValueError("StaticClassifier: a stack of members pools by the mean alone")
        if pooling in STATIC_POOLINGS_WITHOUT_BIGRAMS and bigram_buckets:
            raise ValueError(f"StaticClassifier: {pooling} pooling reads the token rows alone; it takes no bigram rows")
        id2label = {str(i): n for i, n in enumerate(label_names)}
        self.config = StaticConfig(model_type=MODEL_TYPE, architectures=["StaticClassifier"], vocab_size=vocab_size,
                                   dims=dims, hidden=hidden, num_labels=len(label_names), id2label=id2label,
                                   label2id={n: int(i) for i, n in id2label.items()}, unk_token_id=unk_token_id,
                                   normalize=normalize, bigram_buckets=bigram_buckets, members=members,
                                   pooling=pooling)
        # ``members`` students side by side: member i owns columns [i * dims, (i + 1) * dims) of the table and of
        # the bigram rows, and its pooled vector is normalised on its own. Built by ``stack``, whose head is
        # block-diagonal so that the logits are the mean of the members' logits.
        width = dims * members
        self.embeddings = nn.Embedding(vocab_size, width)
        # Training only: the fraction of a text's tokens dropped before pooling (word dropout), so the
        # table cannot lean on any one token of a few thousand texts. Not saved: inference pools every token.
        self.token_dropout = 0.0
        # Hashed bigram rows, added to the pooled sum of the token rows. They start at zero, so the
        # untrained student pools exactly as the unigram table does and training adds word order where it pays.
        self.bigrams = None
        if bigram_buckets:
            self.bigrams = nn.Embedding(bigram_buckets, width)
            nn.init.zeros_(self.bigrams.weight)
        # Attention pooling's one learned query: a token's weight is softmax over the text of (its row . query).
        # It starts at zero, so the untrained student pools exactly as the mean does.
        self.attention_query = nn.Parameter(torch.zeros(width)) if pooling == "attention" else None
        # Convolution pooling: n-gram features (a convolution over neighbouring token rows, ReLU, their mean) mapped
        # back to the table's width and added to the mean. The map starts at zero, so the untrained student pools
        # exactly as the mean does.
        self.conv, self.conv_out = None, None
        if pooling == "conv":
            self.conv = nn.Conv1d(width, width, STATIC_CONV_WIDTH, padding=STATIC_CONV_WIDTH // 2)
            self.conv_out = nn.Linear(width, width, bias=False)
            nn.init.zeros_(self.conv_out.weight)
        pooled = width * (2 if pooling == "mean-max" else 1)
        layers = [nn.Linear(pooled, hidden * members), nn.ReLU(), nn.Linear(hidden * members, len(label_names))] \
            if hidden else [nn.Linear(pooled, len(label_names))]
        self.head = nn.Sequential(*layers)
        # Training only (add_teacher_map): a linear map of the pooled vector to the teacher's sentence vector.
        # Never saved: the artifact is the table and the head.
        self.teacher_map = None
        # Training only (add_low_rank_update): a low-rank update of the table, merged into it when saved.
        self.table_a, self.table_b = None, None

    def add_teacher_map(self, width: int) -> None:
        self.teacher_map = nn.Linear(self.linear_layers()[0].in_features, width)

    def add_low_rank_update(self, rank: int) -> None:
        """Freeze the table; train ``table_a[id] @ table_b`` added to each row instead (merged when saved).
        The per-token factor starts at zero, so the untrained student pools exactly as before."""
        self.embeddings.weight.requires_grad_(False)
        self.table_a = nn.Embedding(self.config.vocab_size, rank)
        nn.init.zeros_(self.table_a.weight)
        self.table_b = nn.Parameter(torch.randn(rank, self.width) / rank ** 0.5)

    @property
    def width(self) -> int:
        """The table's width: every member's columns."""
        return self.config.dims * self.config.members

    def replace_table(self, table: torch.Tensor, unk_token_id: int | None) -> None:
        """The table of a vocabulary with whole words added (methods.static_vocabulary): its rows, their
        count and its unknown token's id; the table stays trainable or frozen as it was."""
        if self.table_a is not None or self.config.members != 1 or table.shape[1] != self.config.dims:
            raise ValueError("StaticClassifier.replace_table: a single student's plain table of the same width")
        old = self.embeddings.weight
        self.embeddings = nn.Embedding(table.shape[0], table.shape[1], device=old.device, dtype=old.dtype)
        with torch.no_grad():
            self.embeddings.weight.copy_(table)
        self.embeddings.weight.requires_grad_(old.requires_grad)
        self.config.vocab_size, self.config.unk_token_id = int(table.shape[0]), unk_token_id

    def merged_table(self) -> torch.Tensor:
        """The table as it is saved: a low-rank update merged into it."""
        weight = self.embeddings.weight
        return weight if self.table_a is None else weight + self.table_a.weight @ self.table_b

    def table_rows(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = self.embeddings(input_ids)
        if self.table_a is not None:
            rows = rows + self.table_a(input_ids) @ self.table_b
        return rows

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        vectors = self.table_rows(input_ids)
        # The mask takes the table's dtype: a float32 mask would lift a bf16 / fp16 model's pooled
        # vector to float32 and the head's matmul would refuse the mix.
        keep = torch.ones_like(input_ids, dtype=vectors.dtype) if attention_mask is None else \
            attention_mask.to(vectors.dtype)
        if self.config.unk_token_id is not None:
            keep = keep * (input_ids != self.config.unk_token_id).to(vectors.dtype)
        if self.training and self.token_dropout:
            keep = keep * (torch.rand(keep.shape, device=keep.device) >= self.token_dropout).to(vectors.dtype)
        if self.attention_query is not None:
            # padding and unknown tokens get no weight (a large negative score, then the mask: a text with no
            # real token pools to zeros). -1e4 rather than -inf, which fp16 keeps and softmax never turns to NaN.
            scores = (vectors @ self.attention_query).masked_fill(keep == 0, -1e4)
            weights = torch.softmax(scores, dim=1) * keep
            return self._normalized((vectors * weights.unsqueeze(-1)).sum(dim=1), 1)
        summed = (vectors * keep.unsqueeze(-1)).sum(dim=1)
        if self.bigrams is not None and input_ids.shape[1] > 1:
            # a pair counts where both of its tokens do (unknown tokens and padding break pairs)
            pairs = self.bigrams(bigram_rows(input_ids, self.config.bigram_buckets))
            summed = summed + (pairs * (keep[:, :-1] * keep[:, 1:]).unsqueeze(-1)).sum(dim=1)
        count = keep.sum(dim=1, keepdim=True)
        pooled = summed / count.clamp(min=1.0)   # no real token: a zero vector
        groups = self.config.members
        if self.conv is not None:
            # padding and unknown tokens enter the window as zero rows and leave no feature of their own
            kept = keep.unsqueeze(-1)
            grams = torch.relu(self.conv((vectors * kept).transpose(1, 2))).transpose(1, 2)
            pooled = pooled + self.conv_out((grams * kept).sum(dim=1) / count.clamp(min=1.0))
        if self.pooling == "mean-max":
            # padding and unknown tokens cannot be a column's max; a text with no real token maxes to zeros
            largest = vectors.masked_fill(keep.unsqueeze(-1) == 0, float("-inf")).amax(dim=1)
            pooled = torch.cat([pooled, torch.where(count > 0, largest, torch.zeros_like(largest))], dim=1)
            groups = 2
        return self._normalized(pooled, groups)

    def _normalized(self, pooled: torch.Tensor, groups: int) -> torch.Tensor:
        """Each of ``groups`` equal shares of the pooled columns divided by its own L2 norm (a stacked member's,
        or the mean's and the max's; one group: the whole vector), where the config asks for it."""
        if not self.config.normalize:
            return pooled
        grouped = pooled.reshape(pooled.shape[0], groups, -1)
        # F.normalize's 1e-12 floor underflows to zero in fp16, and a text with no real token would be 0 / 0
        eps = max(1e-12, torch.finfo(pooled.dtype).tiny)
        return nn.functional.normalize(grouped, dim=-1, eps=eps).reshape(pooled.shape)

    @property
    def pooling(self) -> str:
        return self.config.pooling

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, **_) -> SimpleNamespace:
        # token_type_ids and the like are accepted and ignored: a static table has no segments.
        pooled = self.pool(input_ids, attention_mask)
        vectors = self.teacher_map(pooled) if self.teacher_map is not None and self.training else None
        return SimpleNamespace(logits=self.head(pooled), hidden_states=None, vectors=vectors)

    def linear_layers(self) -> list[nn.Linear]:
        return [m for m in self.head if isinstance(m, nn.Linear)]

    def save_pretrained(self, folder) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.to_json_file(folder / "config.json")
        training_only = ("teacher_map.", "table_a.", "table_b")
        state = {k: v for k, v in self.state_dict().items() if not k.startswith(training_only)}
        state["embeddings.weight"] = self.merged_table()   # a low-rank update merged: a plain table
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / WEIGHTS))

    @classmethod
    def load(cls, folder) -> StaticClassifier:
        """Its own safetensors file and config.json (no transformers loader, so no remote code path)."""
        from safetensors.torch import load_file

        cfg = json.loads((Path(folder) / "config.json").read_text())
        labels = [cfg["id2label"][str(i)] for i in range(cfg["num_labels"])]
        model = cls(cfg["vocab_size"], cfg["dims"], labels, cfg["hidden"], cfg.get("unk_token_id"),
                    cfg.get("normalize", True), cfg.get("bigram_buckets", 0), cfg.get("members", 1),
                    cfg.get("pooling", "mean"))
        model.load_state_dict(load_file(str(Path(folder) / WEIGHTS)))
        return model.eval()

    @classmethod
    def stack(cls, students: list[StaticClassifier]) -> StaticClassifier:
        """One model whose logits are the mean of ``students``' logits (students of one shape, trained apart):
        their tables side by side, each pooled and normalised on its own, and a block-diagonal head. It costs
        the members' tables in size and one gather of the wider rows per token at inference."""
        first = students[0].config
        for s in students[1:]:
            if any(getattr(s.config, k) != getattr(first, k) for k in
                   ("vocab_size", "dims", "hidden", "unk_token_id", "normalize", "bigram_buckets", "members")):
                raise ValueError("StaticClassifier.stack: the students differ in shape; stack students of one recipe")
        if first.members != 1:
            raise ValueError("StaticClassifier.stack: stack single students, not stacks")
        if first.pooling != "mean":
            raise ValueError("StaticClassifier.stack: stack students that pool by the mean alone")
        k = len(students)
        labels = [first.id2label[str(i)] for i in range(first.num_labels)]
        model = cls(first.vocab_size, first.dims, labels, first.hidden, first.unk_token_id, first.normalize,
                    first.bigram_buckets, members=k)
        heads = [s.linear_layers() for s in students]
        with torch.no_grad():
            model.embeddings.weight.copy_(torch.cat([s.merged_table() for s in students], dim=1))
            if model.bigrams is not None:
                model.bigrams.weight.copy_(torch.cat([s.bigrams.weight for s in students], dim=1))
            layers = model.linear_layers()
            if first.hidden:      # each member's hidden units read only its own columns
                layers[0].weight.copy_(torch.block_diag(*[h[0].weight for h in heads]))
                layers[0].bias.copy_(torch.cat([h[0].bias for h in heads]))
            layers[-1].weight.copy_(torch.cat([h[-1].weight for h in heads], dim=1) / k)
            layers[-1].bias.copy_(torch.stack([h[-1].bias for h in heads]).mean(dim=0))
        return model.eval()


def is_static_checkpoint(folder) -> bool:
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text()).get("model_type") == MODEL_TYPE
    except (OSError, ValueError):
        return False
