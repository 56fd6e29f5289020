"""The one training loop every method shares (every method in edgedistill.methods).

Methods differ only in what ``setup_method`` builds: the model (full, layer-reduced, LoRA),
the loss (plain cross-entropy or distillation) and whether a frozen teacher runs alongside.
The loop runs through Hugging Face Accelerate, so ``accelerate launch`` scales it unchanged.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from distill.compute import forward_flops, matmul_params, training_flops
from distill.data import Dataset, Split
from distill.losses import DistillationLoss
from distill.models import (
    QKVCapture,
    load_classifier,
    make_student,
    model_depth,
    num_attention_heads,
    param_counts,
    select_layers,
    wrap_lora,
)
from edgedistill.methods import is_static, method
from edgedistill.metrics import classification_metrics, softmax
from edgedistill.recipe import LossConfig, Recipe, TrainConfig

CE_ONLY = LossConfig(ce=1.0, kl=0.0, cosine=0.0, hidden=0.0)


@dataclass
class MethodSetup:
    name: str
    model: nn.Module
    tokenizer: object
    loss: DistillationLoss
    teacher: nn.Module | None
    train: TrainConfig
    info: dict = field(default_factory=dict)
    # The teacher's own tokenizer where the student's differs (static: model2vec's vocabulary); the
    # teacher's outputs are then computed on its own tokens, once (TeacherCache), never on the student's.
    teacher_tokenizer: object | None = None
    # A step smaller than the method's lr for some parameters: parameter-name prefix -> fraction of lr
    # (the static student's table, methods.static.static_table_lr_scale).
    lr_scales: dict = field(default_factory=dict)
    # The decay of an exponential moving average of the weights, updated at every optimizer step (0: none).
    # Where set, the average is what each epoch validates and what the chosen epoch keeps: the noise of
    # single steps averaged out (methods.static.static_weight_average).
    weight_average: float = 0.0
    # Copies of the model that train from the same start, each with its own seed (batch order, dropout), and
    # whose chosen weights are averaged into one model of the same size (a uniform "model soup"; 1: none).
    soup: int = 1
    # Copies of the model trained apart (each with its own seed and a head started from it) and stacked into one
    # model whose logits are the mean of theirs (``StaticClassifier.stack``; 1: none): k times the size.
    ensemble: int = 1
    # The static table is rebuilt from the teacher's in-context vectors over the training texts once the teacher
    # has read them (``start_static_table``; methods.static_init: context).
    table_in_context: bool = False
    # Up to this many of the training texts' split words join the static table whole (``start_static_table``;
    # methods.static_vocabulary).
    vocabulary: int = 0
    # Once the epoch is chosen, one offset per class is added to the head's output bias so that its labels agree
    # best with the teacher's on the texts that chose the epoch (``calibrate``; methods.static_calibrate).
    calibrate: bool = False


def setup_method(name: str, recipe: Recipe, label_names: list[str], teacher_dir: str | Path | None,
                 layer_contributions: list[float] | None = None, progress: bool = True) -> MethodSetup:
    """Build the model, loss and (frozen) teacher for one method of the recipe."""
    m = recipe.methods[name]
    tcfg = recipe.method_train(name)
    info: dict = {"method": name, "teacher_source": recipe.teacher.model, "layers": None, "lora": None}
    teacher = None
    teacher_tok = None
    lr_scales: dict = {}
    if is_static(name):
        from distill.static import build_static_student

        if teacher_dir is None:
            raise ValueError(f"method {name} distils from the fine-tuned teacher; train the teacher first")
        teacher, teacher_tok = load_classifier(str(teacher_dir), label_names)
        teacher.eval().requires_grad_(False)
        model, tok = build_static_student(teacher_dir, label_names, m.static_dims, m.static_hidden, progress,
                                          m.static_bigrams, m.static_pooling)
        model.embeddings.weight.requires_grad_(m.static_train_table)
        model.token_dropout = m.static_token_dropout
        if m.static_train_table and m.static_table_lr_scale != 1:
            for prefix in ("embeddings.", "bigrams.", "table_a.", "table_b"):
                lr_scales[prefix] = m.static_table_lr_scale
        loss = DistillationLoss(m.loss or recipe.loss, vectors=m.static_teacher_vectors,
                                logits_mse=m.static_logits_mse)
        info["teacher_checkpoint"] = str(teacher_dir)
        info["static"] = {"dims": model.config.dims, "vocabulary": model.config.vocab_size,
                          "hidden": model.config.hidden, "bigram_buckets": m.static_bigrams,
                          "pooling": m.static_pooling,
                          "token_dropout": m.static_token_dropout,
                          "augment_copies": m.static_augment_copies, "teacher_vectors": m.static_teacher_vectors,
                          "logits_mse": m.static_logits_mse,
                          "words_asked": m.static_vocabulary,
                          "init": ("model2vec distillation of the fine-tuned teacher" if m.static_init == "model2vec"
                                   else "model2vec distillation of the fine-tuned teacher, each token moved to its "
                                        "in-context mean over the training texts"),
                          "table": ("frozen" if not m.static_train_table else
                                    f"rank-{m.static_table_rank} update" if m.static_table_rank else "trained"),
                          "table_lr_scale": m.static_table_lr_scale if m.static_train_table else None,
                          "weight_average": m.static_weight_average or None,
                          "soup": m.static_soup if m.static_soup > 1 else None,
                          "ensemble": m.static_ensemble if m.static_ensemble > 1 else None,
                          "epoch_chosen_on": ("teacher agreement on held-out pool texts" if m.static_select == "pool"
                                              else "validation macro-F1"),
                          "calibrate": m.static_calibrate if m.static_calibrate != "none" else None}
    elif not method(name).distilled:
        # LoRA adapts the pre-trained (not fine-tuned) backbone, like the teacher's own fine-tuning.
        model, tok = load_classifier(recipe.teacher.model, label_names)
        loss = DistillationLoss(m.loss or CE_ONLY)
    else:
        if teacher_dir is None:
            raise ValueError(f"method {name} distils from the fine-tuned teacher; train the teacher first")
        teacher, tok = load_classifier(str(teacher_dir), label_names)
        teacher.eval().requires_grad_(False)
        indices = select_layers(m.layers, model_depth(teacher.config), m.num_layers, layer_contributions)
        model = make_student(teacher, indices)
        model.requires_grad_(True)
        loss = DistillationLoss(m.loss or recipe.loss, layer_map=indices)
        info["layers"] = indices
        info["teacher_checkpoint"] = str(teacher_dir)
    if m.lora is not None:
        model = wrap_lora(model, m.lora)
        info["lora"] = vars(m.lora)
    if not loss.needs_teacher:
        teacher = None
    info["loss"] = vars(loss.cfg)
    info.update(param_counts(model))
    # After the count: what is added below trains beside the static student and is not saved as such (the map
    # to the teacher's width is dropped, the low-rank update merged into the table).
    if is_static(name) and m.static_table_rank:
        model.add_low_rank_update(m.static_table_rank)
    if loss.needs_vectors:
        model.add_teacher_map(teacher.config.hidden_size)
    if is_static(name):
        info["params_trainable"] = param_counts(model)["params_trainable"]
        if m.static_ensemble > 1:     # what is saved: the members stacked (trained one at a time, as counted above)
            stacked = param_counts(type(model).stack([model] * m.static_ensemble))
            info.update(params_total=stacked["params_total"])
    return MethodSetup(name, model, tok, loss, teacher, tcfg, info, teacher_tokenizer=teacher_tok, lr_scales=lr_scales,
                       weight_average=m.static_weight_average if is_static(name) else 0.0,
                       soup=m.static_soup if is_static(name) else 1,
                       ensemble=m.static_ensemble if is_static(name) else 1,
                       table_in_context=is_static(name) and m.static_init == "context",
                       vocabulary=m.static_vocabulary if is_static(name) else 0,
                       calibrate=is_static(name) and m.static_calibrate == "teacher")


def start_static_table(setup: MethodSetup, cache: TeacherCache, texts: list[str], progress: bool = True) -> None:
    """A static student's table rebuilt from its training ``texts`` before training, where its recipe asks:
    their frequent split words added whole (``setup.vocabulary``; the student's tokenizer then knows them), and
    each token started at its in-context mean over them (``setup.table_in_context``; ``cache``, the teacher's pass
    over ``texts``, built ``with_token_vectors``). Nothing for any other setup."""
    if not (setup.table_in_context or setup.vocabulary):
        return
    from distill.static import TokenContext, distil_in_context, distil_static, domain_words, hf_tokenizer, unk_token_id

    model, source = setup.model, setup.info["teacher_checkpoint"]
    words = domain_words(texts, setup.teacher_tokenizer, setup.vocabulary) if setup.vocabulary else []
    if setup.table_in_context:
        if cache is None or cache.token_sums is None:
            raise ValueError(f"{setup.name}: static_init: context needs the teacher's vectors per token; build its "
                             "TeacherCache with with_token_vectors=True")
        context = TokenContext(cache.token_sums, cache.token_counts, setup.teacher_tokenizer.get_vocab())
        static = distil_in_context(source, model.config.dims, context, progress, words)
        setup.info["static"]["tokens_in_context"] = int((cache.token_counts > 0).sum())
    else:
        static = distil_static(source, model.config.dims, progress, words)
    table = torch.as_tensor(static.embedding, dtype=torch.float32)
    if setup.vocabulary:
        setup.info["static"]["words_added"] = len(words)
    if words:
        rows_before = model.config.vocab_size
        model.replace_table(table, unk_token_id(static.tokenizer))
        setup.tokenizer = hf_tokenizer(static.tokenizer)
        added = (model.config.vocab_size - rows_before) * model.width
        setup.info["params_total"] += added * setup.ensemble
        setup.info["params_trainable"] += added if model.embeddings.weight.requires_grad else 0
        setup.info["static"]["vocabulary"] = model.config.vocab_size
        return
    if table.shape != model.embeddings.weight.shape:
        raise ValueError(f"{setup.name}: the rebuilt table is {tuple(table.shape)}, the student's "
                         f"{tuple(model.embeddings.weight.shape)}: not the vocabulary it was built with")
    with torch.no_grad():
        model.embeddings.weight.copy_(table)


class _Encoded(torch.utils.data.Dataset):
    def __init__(self, tokenizer, split: Split, max_length: int):
        self.enc = tokenizer(split.texts, truncation=True, max_length=max_length)
        self.labels = split.labels
        self.lengths = [len(x) for x in self.enc["input_ids"]]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {**{k: v[i] for k, v in self.enc.items()}, "labels": int(self.labels[i]), "idx": i}


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Shuffled batches of similar-length examples (as transformers' ``group_by_length``).

    Random batches of tweets pad to the longest of 32 (about twice the mean length); grouping
    within shuffled mega-batches of 50 batches halves the padding while keeping the order random.
    """
    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = np.asarray(lengths), batch_size, seed, 0

    def __iter__(self):
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        order = rng.permutation(len(self.lengths))
        mega = self.batch_size * 50
        batches = []
        for start in range(0, len(order), mega):
            chunk = order[start:start + mega]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for i in rng.permutation(len(batches)):
            yield batches[i]

    def __len__(self):
        return -(-len(self.lengths) // self.batch_size)


class _Collate:
    """Pad token fields; attach the cached teacher outputs of the batch's examples."""
    def __init__(self, tokenizer, cache: TeacherCache | None = None):
        self.tokenizer, self.cache = tokenizer, cache

    def __call__(self, items):
        idx = [it.pop("idx") for it in items]
        batch = self.tokenizer.pad(items, return_tensors="pt")
        batch["idx"] = torch.tensor(idx)
        if self.cache is not None:
            batch.update(self.cache.batch(idx, batch["input_ids"].shape[1]))
        return batch


class TeacherCache:
    """The frozen teacher's logits and layer outputs for every training example, computed once.

    The teacher runs in eval mode, so its outputs are the same every epoch; computing them once
    instead of once per epoch per student saves most of the distillation overhead on a CPU.
    Hidden states are kept unpadded in float16 (about 1.4 GB for 20k tweets x 6 layers x 384).
    """
    def __init__(self, teacher, tokenizer, split: Split, max_length: int, batch_size: int, device, with_hidden: bool,
                 progress: bool = True, with_vectors: bool = False, with_token_vectors: bool = False):
        ds = _Encoded(tokenizer, split, max_length)
        order = np.argsort(ds.lengths, kind="stable")
        self.logits = np.zeros((len(ds), teacher.config.num_labels), dtype=np.float32)
        self.hidden: list[np.ndarray | None] = [None] * len(ds)
        # the teacher's sentence vector per text (mean of its last layer over real tokens): a static student's target
        self.vectors = np.zeros((len(ds), teacher.config.hidden_size), dtype=np.float32) if with_vectors else None
        # per vocabulary id, the sum of its last-layer vectors over its occurrences in these texts and their count
        # (special tokens and padding left out): where a static table starts "in context" (methods.static_init)
        self.token_sums = self.token_counts = None
        if with_token_vectors:
            self.token_sums = np.zeros((teacher.config.vocab_size, teacher.config.hidden_size), dtype=np.float64)
            self.token_counts = np.zeros(teacher.config.vocab_size, dtype=np.int64)
            special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        teacher.eval()
        collate = _Collate(tokenizer)
        self.tokens = int(sum(ds.lengths))
        self.flops = forward_flops(matmul_params(teacher), self.tokens)   # one pass, shared by every student
        with torch.no_grad():
            for start in tqdm(range(0, len(order), batch_size), desc="teacher outputs (cached once)",
                              disable=not progress,
                              leave=False, dynamic_ncols=True):
                ids = order[start:start + batch_size].tolist()
                batch = collate([ds[i] for i in ids])
                batch.pop("idx"), batch.pop("labels")
                out = teacher(**{k: v.to(device) for k, v in batch.items()},
                              output_hidden_states=with_hidden or with_vectors or with_token_vectors)
                self.logits[ids] = out.logits.float().cpu().numpy()
                if with_vectors:
                    mask = batch["attention_mask"].to(device).unsqueeze(-1).float()
                    last = out.hidden_states[-1].float()
                    self.vectors[ids] = ((last * mask).sum(1) / mask.sum(1).clamp(min=1.0)).cpu().numpy()
                if with_token_vectors:
                    real = batch["attention_mask"].bool() & ~torch.isin(batch["input_ids"], special)
                    ids_real = batch["input_ids"][real].numpy()
                    np.add.at(self.token_sums, ids_real, out.hidden_states[-1].float().cpu()[real].double().numpy())
                    np.add.at(self.token_counts, ids_real, 1)
                if with_hidden:
                    # (b, seq, layers, H)
                    h = torch.stack(out.hidden_states[1:], dim=2).to(torch.float16).cpu().numpy()
                    for row, i in enumerate(ids):
                        self.hidden[i] = h[row, :ds.lengths[i]]
        self.with_hidden = with_hidden

    def logits_only(self) -> TeacherCache:
        """The same cache without its layer outputs, for a student whose loss does not read them (a
        static student's tokens do not line up with the teacher's)."""
        view = object.__new__(TeacherCache)
        view.__dict__.update(self.__dict__, with_hidden=False)
        return view

    def batch(self, idx: list[int], seq_len: int) -> dict:
        out = {"teacher_logits": torch.from_numpy(self.logits[idx])}
        if self.vectors is not None:
            out["teacher_vectors"] = torch.from_numpy(self.vectors[idx])
        if self.with_hidden:
            first = self.hidden[idx[0]]
            h = np.zeros((len(idx), seq_len, first.shape[1], first.shape[2]), dtype=np.float16)
            for row, i in enumerate(idx):
                h[row, :len(self.hidden[i])] = self.hidden[i]
            out["teacher_hidden"] = torch.from_numpy(h)
        return out


def param_groups(model: nn.Module, cfg: TrainConfig, lr_scales: dict) -> list[dict]:
    """AdamW groups: weight decay on matrices only (no decay on biases and LayerNorm weights), each at
    the method's lr times its ``lr_scales`` fraction (matched by parameter-name prefix)."""
    groups: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = next((s for prefix, s in lr_scales.items() if name.startswith(prefix)), 1.0)
            groups.setdefault((p.ndim >= 2, scale), []).append(p)
    # Decayed groups first, as the two-group optimizer always had them.
    return [{"params": ps, "weight_decay": cfg.weight_decay if decay else 0.0, "lr": cfg.lr * scale}
            for (decay, scale), ps in sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[0][1]))]


def teacher_pass(setup: MethodSetup, split: Split, max_length: int, batch_size: int, device,
                 progress: bool = True) -> tuple[Split, float]:
    """``split`` labelled with the teacher's argmax, and the FLOPs of that pass."""
    cache = TeacherCache(setup.teacher.to(device), setup.teacher_tokenizer or setup.tokenizer, split, max_length,
                         batch_size, device, with_hidden=False, progress=progress)
    return Split(list(split.texts), cache.logits.argmax(axis=1).astype(np.int64)), cache.flops


def teacher_labelled(setup: MethodSetup, split: Split, max_length: int, batch_size: int, device,
                     progress: bool = True) -> Split:
    """``split`` labelled with the teacher's argmax (held-out pool texts that choose a static student's epoch)."""
    return teacher_pass(setup, split, max_length, batch_size, device, progress)[0]


def calibrate(setup: MethodSetup, model, data: Dataset, max_length: int, batch_size: int, device,
              progress: bool = True) -> dict:
    """Add to ``model``'s output bias the per-class offsets (``distill.calibration.fit_offsets``) that make its
    labels agree best with the teacher's on the texts that chose its epoch: ``data.selection`` (already
    teacher-labelled) where given, else the validation split's texts, labelled by the teacher here (their own
    labels are not read). Returns what was fitted, for the method's history, with the FLOPs of the teacher's
    pass it ran (0 where the texts came labelled)."""
    from distill.calibration import fit_offsets

    if setup.teacher is None:
        raise ValueError(f"{setup.name}: static_calibrate: teacher needs the teacher; it was not loaded")
    texts, flops = (data.selection, 0.0) if data.selection is not None else teacher_pass(
        setup, data.validation, max_length, batch_size, device, progress)
    logits = predict_logits(model, setup.tokenizer, texts, max_length, batch_size, device)
    offsets, before, after = fit_offsets(logits, texts.labels)
    bias = model.linear_layers()[-1].bias
    with torch.no_grad():
        bias.add_(torch.as_tensor(offsets, dtype=bias.dtype, device=bias.device))
    return {"fitted_to": "teacher labels on the texts that chose the epoch", "texts": len(texts),
            "offsets": [round(float(o), 4) for o in offsets], "teacher_agreement_macro_f1_before": before,
            "teacher_agreement_macro_f1_after": after, "teacher_forward_flops": flops}


def _loader(tokenizer, split: Split, max_length: int, batch_size: int, shuffle: bool, seed: int,
            cache: TeacherCache | None = None) -> DataLoader:
    ds = _Encoded(tokenizer, split, max_length)
    collate = _Collate(tokenizer, cache)
    if shuffle:
        return DataLoader(ds, batch_sampler=LengthGroupedBatches(ds.lengths, batch_size, seed), collate_fn=collate)
    # Evaluation: sorted by length so padding stays small; predict_logits restores the order.
    return DataLoader(torch.utils.data.Subset(ds, np.argsort(ds.lengths, kind="stable").tolist()),
                      batch_size=batch_size, collate_fn=collate)


@torch.no_grad()
def predict_logits(model, tokenizer, split: Split, max_length: int, batch_size: int, device) -> np.ndarray:
    """Logits for every example of ``split`` in its original order."""
    model.eval()
    loader = _loader(tokenizer, split, max_length, batch_size, shuffle=False, seed=0)
    out = []
    order = []
    for batch in loader:
        order.append(batch.pop("idx").numpy())
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        out.append(model(**batch).logits.float().cpu().numpy())
    logits = np.concatenate(out)
    restored = np.empty_like(logits)
    restored[np.concatenate(order)] = logits
    return restored


@dataclass
class TrainOutcome:
    model: nn.Module                 # best-on-validation weights, unwrapped
    history: dict
    best_epoch: int
    train_time_s: float
    train_examples_per_s: float
    validation: dict
    test: dict
    compute: dict = field(default_factory=dict)   # epochs run, optimizer steps, examples, tokens, FLOPs


def train(setup: MethodSetup, data: Dataset, max_length: int, seed: int, accelerator=None,
          progress: bool = True, cache: TeacherCache | None = None) -> TrainOutcome:
    """Train ``setup.model``; select the epoch with the best validation macro-F1 (or, where ``data.selection``
    is given, the best agreement with its teacher labels); test it."""
    if setup.soup > 1 or setup.ensemble > 1:
        return train_members(setup, data, max_length, seed, accelerator, progress, cache)
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    from transformers import get_scheduler

    cfg = setup.train
    acc = accelerator or Accelerator(gradient_accumulation_steps=cfg.grad_accum, mixed_precision=cfg.mixed_precision)
    set_seed(seed)
    if setup.teacher is None or (cache is not None and setup.loss.needs_hidden and not cache.with_hidden):
        cache = None   # no teacher needed, or a cache without the hidden states this loss needs
    if setup.loss.needs_relations:
        cache = None   # per-token attention relations are too large to cache: the teacher runs alongside
    if cache is not None and cache.with_hidden and not setup.loss.needs_hidden:
        cache = cache.logits_only()
    if setup.teacher is not None and cache is None and setup.teacher_tokenizer is not None:
        raise ValueError(f"{setup.name}: the teacher reads other tokens than this student; its outputs must come "
                         "from a TeacherCache built with the teacher's tokenizer")
    if setup.loss.needs_vectors and (cache is None or cache.vectors is None):
        raise ValueError(f"{setup.name}: static_teacher_vectors needs the teacher's sentence vectors; build its "
                         "TeacherCache with with_vectors=True")
    train_loader = _loader(setup.tokenizer, data.train, max_length, cfg.batch_size, shuffle=True, seed=seed,
                           cache=cache)
    optimizer = torch.optim.AdamW(param_groups(setup.model, cfg, setup.lr_scales), lr=cfg.lr)
    steps_per_epoch = math.ceil(len(train_loader) / (cfg.grad_accum * acc.num_processes))
    # Accelerate advances a prepared scheduler once per process at every optimizer step (it expects
    # a schedule written for one process), so the schedule counts in those units; counted in
    # optimizer steps, N processes would end it after 1/N of the training.
    total_steps = steps_per_epoch * cfg.epochs * acc.num_processes
    scheduler = get_scheduler(cfg.scheduler if cfg.scheduler != "constant" else "constant_with_warmup", optimizer,
                              num_warmup_steps=int(cfg.warmup_ratio * total_steps), num_training_steps=total_steps)
    model, optimizer, train_loader, scheduler = acc.prepare(setup.model, optimizer, train_loader, scheduler)
    teacher = setup.teacher.to(acc.device).eval() if setup.teacher is not None and cache is None else None
    loss_fn = setup.loss
    hidden = loss_fn.needs_hidden
    relations = loss_fn.needs_relations and teacher is not None
    s_qkv = QKVCapture(acc.unwrap_model(model)) if relations else None
    t_qkv = QKVCapture(teacher, loss_fn.layer_map) if relations else None
    heads = num_attention_heads(teacher.config) if relations else None
    unwrapped_params = acc.unwrap_model(model)
    n_params, n_trainable = matmul_params(unwrapped_params), matmul_params(unwrapped_params, trainable_only=True)
    n_teacher = matmul_params(teacher) if teacher is not None else 0
    tokens = 0
    # torch's own weight averaging: a copy of the model whose weights follow the trained ones with decay
    # setup.weight_average; each process keeps one (their weights are equal after every synchronised step).
    average = AveragedModel(unwrapped_params, multi_avg_fn=get_ema_multi_avg_fn(setup.weight_average)) \
        if setup.weight_average else None

    history = {"steps": [], "epochs": []}
    best = {"f1": -1.0, "loss": math.inf, "epoch": 0, "state": None}
    step, seen, train_time, epochs_run = 0, 0, 0.0, 0
    for epoch in range(1, cfg.epochs + 1):
        epochs_run = epoch
        model.train()
        running, running_parts, n_running, epoch_losses = 0.0, {}, 0, []
        bar = tqdm(train_loader, desc=f"{setup.name} epoch {epoch}/{cfg.epochs}",
                   disable=not (progress and acc.is_main_process),
                   dynamic_ncols=True, leave=False)
        t0 = time.perf_counter()
        for batch in bar:
            labels = batch.pop("labels")
            batch.pop("idx")
            t_logits, t_hidden = batch.pop("teacher_logits", None), batch.pop("teacher_hidden", None)
            t_vectors = batch.pop("teacher_vectors", None)
            with acc.accumulate(model):
                out = model(**batch, output_hidden_states=hidden)
                if teacher is not None:
                    with torch.no_grad():
                        t_out = teacher(**batch, output_hidden_states=hidden)
                    t_logits, t_hidden = t_out.logits, t_out.hidden_states if hidden else None
                elif t_hidden is not None:
                    # Cached layer outputs (b, seq, layers, H) -> transformers' tuple layout (index 0 = embeddings).
                    t_hidden = (None, *t_hidden.float().unbind(dim=2))
                total, parts = loss_fn(out.logits, labels, t_logits, out.hidden_states if hidden else None,
                                       t_hidden if hidden else None, batch.get("attention_mask"),
                                       s_qkv.outputs if relations else None,
                                       t_qkv.outputs if relations else None, heads,
                                       getattr(out, "vectors", None), t_vectors)
                acc.backward(total)
                if acc.sync_gradients and cfg.max_grad_norm:
                    acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            seen += len(labels) * acc.num_processes
            tokens += int(batch["attention_mask"].sum()) * acc.num_processes if "attention_mask" in batch else \
                int(batch["input_ids"].numel()) * acc.num_processes
            running += float(total.detach())
            n_running += 1
            epoch_losses.append(float(total.detach()))
            for k, v in parts.items():
                running_parts[k] = running_parts.get(k, 0.0) + v
            if acc.sync_gradients:
                step += 1
                if average is not None:
                    average.update_parameters(acc.unwrap_model(model))
                if step % cfg.log_every == 0:
                    epoch_at = round(epoch - 1 + bar.n / max(len(train_loader), 1), 4)
                    history["steps"].append({"step": step, "epoch": epoch_at,
                                             "loss": running / n_running,
                                             **{k: v / n_running for k, v in running_parts.items()}})
                    bar.set_postfix(loss=f"{running / n_running:.4f}")
                    running, running_parts, n_running = 0.0, {}, 0
        train_time += time.perf_counter() - t0
        bar.close()
        unwrapped = average.module if average is not None else acc.unwrap_model(model)
        val_logits = predict_logits(unwrapped, setup.tokenizer, data.validation, max_length, cfg.eval_batch_size,
                                    acc.device)
        val = classification_metrics(data.validation.labels, softmax(val_logits), data.label_names)
        val_loss = float(torch.nn.functional.cross_entropy(torch.from_numpy(val_logits),
                                                           torch.from_numpy(data.validation.labels)))
        record = {"epoch": epoch, "train_loss": float(np.mean(epoch_losses)), "val_loss": val_loss,
                  "val_macro_f1": val["macro_f1"], "val_accuracy": val["accuracy"]}
        chosen, chosen_loss = val["macro_f1"], val_loss
        if data.selection is not None:
            # Held-out teacher-labelled texts choose the epoch: agreement with the teacher on thousands of
            # texts, a steadier signal than a few hundred labelled validation texts.
            sel_logits = predict_logits(unwrapped, setup.tokenizer, data.selection, max_length, cfg.eval_batch_size,
                                        acc.device)
            sel = classification_metrics(data.selection.labels, softmax(sel_logits), data.label_names)
            chosen, chosen_loss = sel["macro_f1"], float(torch.nn.functional.cross_entropy(
                torch.from_numpy(sel_logits), torch.from_numpy(data.selection.labels)))
            record.update(select_macro_f1=sel["macro_f1"], select_agreement=sel["accuracy"])
        history["epochs"].append(record)
        if acc.is_main_process:
            tqdm.write(f"[{setup.name}] epoch {epoch}: train loss {np.mean(epoch_losses):.4f}  "
                       f"val loss {val_loss:.4f}  val macro-F1 {val['macro_f1']:.4f}"
                       + (f"  teacher agreement macro-F1 {chosen:.4f} (chooses the epoch)"
                          if data.selection is not None else ""))
        if chosen > best["f1"] or (chosen == best["f1"] and chosen_loss < best["loss"]):
            best = {"f1": chosen, "loss": chosen_loss, "epoch": epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in unwrapped.state_dict().items()}}
        if cfg.early_stopping_patience and epoch - best["epoch"] >= cfg.early_stopping_patience:
            if acc.is_main_process:
                tqdm.write(f"[{setup.name}] no {'teacher agreement' if data.selection is not None else 'validation'} "
                           f"gain for {cfg.early_stopping_patience} epoch(s): "
                           f"stopping after epoch {epoch}, keeping epoch {best['epoch']}")
            break
    for capture in (s_qkv, t_qkv):
        if capture is not None:
            capture.remove()
    unwrapped = acc.unwrap_model(model)
    unwrapped.load_state_dict(best["state"])
    if setup.calibrate:
        history["calibration"] = calibrate(setup, unwrapped, data, max_length, cfg.eval_batch_size, acc.device,
                                           progress and acc.is_main_process)
    val_logits = predict_logits(unwrapped, setup.tokenizer, data.validation, max_length, cfg.eval_batch_size,
                                acc.device)
    test_logits = predict_logits(unwrapped, setup.tokenizer, data.test, max_length, cfg.eval_batch_size, acc.device)
    return TrainOutcome(
        model=unwrapped, history=history, best_epoch=best["epoch"], train_time_s=train_time,
        train_examples_per_s=seen / train_time if train_time else 0.0,
        compute={"epochs_run": epochs_run, "optimizer_steps": step, "examples_seen": seen, "tokens_seen": tokens,
                 "train_flops": training_flops(n_params, n_trainable, tokens),
                 # the frozen teacher run alongside (attention terms, or no cache), and its pass over the texts a
                 # calibration fits to; a cached pass is added by the caller
                 "teacher_forward_flops": (forward_flops(n_teacher, tokens) if teacher is not None else 0.0)
                 + history.get("calibration", {}).get("teacher_forward_flops", 0.0),
                 "matmul_params": n_params, "matmul_params_trainable": n_trainable},
        validation=classification_metrics(data.validation.labels, softmax(val_logits), data.label_names),
        test=classification_metrics(data.test.labels, softmax(test_logits), data.label_names))


def train_members(setup: MethodSetup, data: Dataset, max_length: int, seed: int, accelerator=None,
                  progress: bool = True, cache: TeacherCache | None = None) -> TrainOutcome:
    """Several copies of ``setup.model``, each trained by ``train`` with seeds ``seed``, ``seed + 1``, ...,
    combined into one model, which is validated and tested.

    A soup (``setup.soup``): every member starts alike and the weights each keeps (its own best epoch) are
    averaged into one model of the same size. Members that start alike stay close enough for their mean to be
    a model (Wortsman et al. 2022, "Model soups"); what one member memorises of its batch order, the others do
    not. An ensemble (``setup.ensemble``): each member's head starts from its own seed, and the members are
    stacked into one model whose logits are the mean of theirs: k times the size, and members free to differ."""
    import copy
    from dataclasses import replace

    count, kind = (setup.soup, "soup") if setup.soup > 1 else (setup.ensemble, "ensemble")
    members = []
    for i in range(count):
        if progress:
            tqdm.write(f"[{setup.name}] {kind} member {i + 1}/{count} (seed {seed + i})")
        # Members are not calibrated: the combined model is, once.
        member = replace(setup, model=copy.deepcopy(setup.model), soup=1, ensemble=1, calibrate=False)
        if kind == "ensemble" and i:
            torch.manual_seed(seed + i)
            for layer in member.model.linear_layers():
                layer.reset_parameters()
        members.append(train(member, data, max_length, seed + i, accelerator, progress, cache))
    if kind == "soup":
        states = [m.model.state_dict() for m in members]
        averaged = {k: torch.stack([st[k].float() for st in states]).mean(dim=0).to(v.dtype)
                    if v.is_floating_point() else v for k, v in states[0].items()}
        combined = members[0].model
        combined.load_state_dict(averaged)
    else:
        combined = type(members[0].model).stack([m.model for m in members])
    device = next(members[0].model.parameters()).device
    combined.to(device)
    cfg = setup.train
    calibration = calibrate(setup, combined, data, max_length, cfg.eval_batch_size, device, progress) \
        if setup.calibrate else None
    val_logits = predict_logits(combined, setup.tokenizer, data.validation, max_length, cfg.eval_batch_size, device)
    test_logits = predict_logits(combined, setup.tokenizer, data.test, max_length, cfg.eval_batch_size, device)
    summed = ("epochs_run", "optimizer_steps", "examples_seen", "tokens_seen", "train_flops", "teacher_forward_flops")
    compute = {**members[0].compute, **{k: sum(m.compute[k] for m in members) for k in summed}}
    if calibration:
        compute["teacher_forward_flops"] += calibration["teacher_forward_flops"]
    train_time = sum(m.train_time_s for m in members)
    history = {**members[0].history,
               "members": [{"seed": seed + i, "best_epoch": m.best_epoch,
                            "validation_macro_f1": m.validation["macro_f1"], "history": m.history}
                           for i, m in enumerate(members)],
               **({"calibration": calibration} if calibration else {})}
    # Each member keeps its own best epoch (all in history["members"]); the combined model reports the first member's.
    return TrainOutcome(
        model=combined, history=history, best_epoch=members[0].best_epoch, train_time_s=train_time,
        train_examples_per_s=compute["examples_seen"] / train_time if train_time else 0.0, compute=compute,
        validation=classification_metrics(data.validation.labels, softmax(val_logits), data.label_names),
        test=classification_metrics(data.test.labels, softmax(test_logits), data.label_names))
