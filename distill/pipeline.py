"""The training stage end to end: data -> teacher -> students / LoRA / hybrid -> results.

Each finished method is a complete checkpoint folder (``edgedistill.json`` written last, with
its metrics), so an interrupted run resumes at the first unfinished method. A method or baseline
that fails is recorded (``distill/failures.py``) and the others go on; results are written for
whatever finished.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from distill.data import Dataset, load_dataset
from distill.errors import RunError
from distill.failures import clear_failure, collect_failures, failure_file, paragraph, record_failure
from edgedistill import layout
from edgedistill.configbase import ConfigError, dump, to_dict
from edgedistill.integrity import file_records
from edgedistill.io import atomic_dir, atomic_write_json, atomic_write_text, remove_stale_temporaries
from edgedistill.layout import CHECKPOINT_MARKER as MARKER
from edgedistill.layout import checkpoint_complete
from edgedistill.metadata import CheckpointMeta
from edgedistill.methods import ORDER, is_baseline, is_static, layer_students, students
from edgedistill.provenance import provenance
from edgedistill.recipe import STATIC_OFF, Recipe

SCHEMA_VERSION = 1


def model_dir(recipe: Recipe, method: str) -> Path:
    return layout.model_dir(recipe.run_dir, method)


def _affecting(recipe: Recipe, method: str) -> dict:
    """The recipe settings that shape one method's checkpoint (what must match to reuse it)."""
    d = to_dict(recipe)
    out = {k: d[k] for k in ("data", "teacher", "train")}
    out |= {"seed": d["run"]["seed"], "method": _own_settings(d["methods"].get(method), method)}
    if method in students():
        out["loss"] = d["loss"]                   # students also depend on the teacher's checkpoint
        out["teacher_method"] = _own_settings(d["methods"].get("teacher"), "teacher")
    return out


def _own_settings(settings: dict | None, method: str) -> dict | None:
    """A method's settings without those only the static student reads: a new static setting leaves
    the other methods' checkpoints (and suite rows) current. The static student's own, without those at
    their ``STATIC_OFF`` value: a new static option, off, leaves its rows current too."""
    if settings is None:
        return settings
    if is_static(method):
        return {k: v for k, v in settings.items() if k not in STATIC_OFF or v != STATIC_OFF[k]}
    return {k: v for k, v in settings.items() if not k.startswith("static_")}


def method_problems(recipe: Recipe, methods: list[str] | None = None) -> list[str]:
    """``data.max_length`` against the teacher's ``max_position_embeddings`` and every student's
    layer selection against its depth (both read from the teacher's config.json, no weights
    loaded): one line per problem, naming the field."""
    from distill.models import config_depth, select_layers, source_config, weights_problem
    from edgedistill.checkpoint import ModelError

    students_ = [n for n in (methods or recipe.method_names()) if n in layer_students()]
    teacher = model_dir(recipe, "teacher")
    source = str(teacher) if checkpoint_complete(teacher) else recipe.teacher.model
    try:
        config, where = source_config(source)
        depth = config_depth(config, where) if students_ else 0
    except ModelError as exc:
        return [f"teacher.model: {exc}"]
    problems = []
    damaged = weights_problem(source) if Path(source).is_dir() else None
    if damaged:
        problems.append(f"teacher.model: {damaged}")
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    if isinstance(positions, int) and recipe.data.max_length > positions:
        problems.append(f"data.max_length: {recipe.data.max_length} tokens is more than the teacher's "
                        f"max_position_embeddings ({positions}, {where}); the model cannot read texts that long. "
                        f"Set data.max_length to {positions} or less (e.g. --set "
                        f"data.max_length={min(positions, 128)})")
    for name in students_:
        m = recipe.methods[name]
        where = f"methods.{name}.layers"
        if isinstance(m.layers, list):
            bad = [i for i in m.layers if not 0 <= i < depth]
            if bad or not m.layers or len(set(m.layers)) != len(m.layers):
                problems.append(f"{where}: {m.layers}: teacher has {depth} layers (valid: distinct indices "
                                f"0..{depth - 1})")
                continue
        try:
            # `auto` picks its layers from the trained teacher's analysis; here only its depth can be checked.
            indices = (list(range(m.num_layers or depth // 2)) if m.layers == "auto"
                       else select_layers(m.layers, depth, m.num_layers))
        except ModelError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not indices:
            problems.append(f"methods.{name}: a student needs at least one layer (the teacher has {depth})")
        elif len(indices) >= depth:
            problems.append(f"methods.{name}: a student of {len(indices)} of the teacher's {depth} layers is not "
                            "smaller than the teacher; pick fewer layers, a deeper teacher, or disable this method")
    return problems


def method_fingerprint(recipe: Recipe, method: str) -> str:
    """SHA-256 of the settings that shape one method's checkpoint: equal fingerprints, equal training."""
    return hashlib.sha256(json.dumps(_affecting(recipe, method), sort_keys=True, default=str).encode()).hexdigest()


def changed_methods(recipe: Recipe) -> dict[str, list[str]]:
    """The complete checkpoints in the run folder trained with other settings than ``recipe``'s:
    method -> the recipe sections that changed (read from the run's recorded recipe)."""
    from edgedistill.recipe import load_recipe

    path = layout.recipe_file(recipe.run_dir)
    if not path.is_file():
        return {}
    old = load_recipe(path)
    out = {}
    for folder in layout.model_folders(recipe.run_dir):
        m = folder.name
        if not checkpoint_complete(folder) or m not in recipe.methods or m not in old.methods:
            continue
        new, was = _affecting(recipe, m), _affecting(old, m)
        changed = [k for k in new if new[k] != was.get(k)]
        if changed:
            out[m] = changed
    return out


def prepare_run_dir(recipe: Recipe, force: bool = False, write: bool = True, retrain_changed: bool = False,
                    retrain: list[str] | tuple = ()) -> list[str]:
    """Write the resolved recipe; refuse to mix checkpoints trained under different settings.

    With ``retrain_changed`` the checkpoints whose settings changed are removed instead (the others
    are kept); with ``force`` those and the ``retrain`` methods are. Removal happens before the new
    recipe is recorded, so a crash cannot leave an old checkpoint that looks current. A removed
    method's exported artifacts go with it: they were built from the old weights.
    Every process checks; only the one that ``write``s (the main process) changes the folder.
    Returns the methods whose settings changed."""
    if write:
        remove_stale_temporaries(recipe.run_dir)     # .partial checkpoints of a killed run
    changed = changed_methods(recipe)
    if changed and not (force or retrain_changed):
        m, keys = next(iter(changed.items()))
        raise RunError(f"{recipe.run_dir} holds a {m} model trained with different {', '.join(keys)} settings"
                       f"{f' (also changed: {sorted(set(changed) - {m})})' if len(changed) > 1 else ''}. "
                       "Use another run.name, --retrain-changed to retrain only the changed methods, or --force to "
                       "retrain every method from scratch.")
    if write:
        for m in sorted(set(changed) | (set(retrain) if force else set())):
            for folder in (layout.model_dir(recipe.run_dir, m), layout.artifacts_dir(recipe.run_dir) / m):
                if folder.exists():
                    shutil.rmtree(folder)
        atomic_write_text(layout.recipe_file(recipe.run_dir),
                          f"# Resolved recipe of run {recipe.run.name} (from {recipe.source})\n" + dump(recipe))
    return sorted(changed)


def train_run(recipe: Recipe, methods: list[str] | None = None, force: bool = False, progress: bool = True,
              retrain_changed: bool = False, eval_samples: int | None = None, keep_going: bool = True) -> dict:
    """Train every enabled method of ``recipe`` (or ``methods``), then the enabled baselines (or the
    baselines named in ``methods``), and write results/<run>/.
    Complete checkpoints are kept; see ``prepare_run_dir`` for ``force`` and ``retrain_changed``.
    ``eval_samples`` caps the texts a teacher used as it is is evaluated on (``export --model``).
    A method or baseline that fails is recorded (``distill/failures.py``) and the others train; the
    returned metrics list it under ``failed``. ``keep_going=False`` (and a launch of several processes)
    raises the first failure instead, after writing the results of what finished."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from distill.launch import check_processes

    acc = Accelerator(gradient_accumulation_steps=recipe.train.grad_accum, mixed_precision=recipe.train.mixed_precision)
    check_processes(acc)       # before any work: unconnected processes would race on the same files
    names = methods or recipe.method_names()
    baselines = [n for n in names if is_baseline(n)] if methods else recipe.baselines.enabled()
    names = [n for n in names if not is_baseline(n)]
    from distill.baselines import library_problems

    problems = method_problems(recipe, names) + library_problems(names + baselines)
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in the recipe; nothing was trained:\n  - "
                          + "\n  - ".join(problems))
    data = load_dataset(recipe.data)
    from distill.baselines import data_problems

    if problems := data_problems(data, baselines):
        raise ConfigError(f"{len(problems)} problem(s) with the data; nothing was trained:\n  - "
                          + "\n  - ".join(problems))
    summary = data.summary()
    acc.print(f"Data: {summary['sizes']} ({summary['origin']}); train class counts {summary['class_counts']['train']}")
    if not recipe.teacher.fine_tune:
        from distill.byo import check_labels, model_label_names

        # Before any weights are read: a given classifier must predict the data's classes.
        check_labels(recipe.teacher.model, model_label_names(recipe.teacher.model), data.label_names)
    # The unlabelled pool and augmented copies are read and checked before any training starts.
    student_data, extra_info = student_dataset(recipe, data)
    if extra_info:
        acc.print(f"Students also learn from {extra_info}")
    own = own_pool_data(recipe, names, data)
    for name, (_, info) in own.items():
        acc.print(f"[{name}] learns from its own teacher-labelled pool: {info}")
    prepare_run_dir(recipe, force, write=acc.is_main_process, retrain_changed=retrain_changed, retrain=names)
    acc.wait_for_everyone()     # every process sees the folder after the main one removed what is retrained
    # Printed once every check has passed: a refusal is the first thing a user reads, not the last.
    acc.print("Resolved recipe:\n" + dump(recipe))
    teacher_dir = model_dir(recipe, "teacher")
    needs_teacher = [n for n in names if n in students()]
    if needs_teacher and "teacher" not in names and not checkpoint_complete(teacher_dir):
        names = ["teacher", *names]
    failures = {}
    try:
        cache = None
        for name in names:
            folder = model_dir(recipe, name)
            if checkpoint_complete(folder) and not force:
                print(f"[{name}] complete checkpoint found in {folder}; skipping (use --force to retrain)")
                continue
            if name in students() and not checkpoint_complete(teacher_dir):
                # Nothing to distil from: the teacher failed before it (and was recorded).
                if acc.is_main_process:
                    failures[name] = _failed(recipe, name, "method", RunError(
                        f"not trained: it distils from the fine-tuned teacher, which did not finish ({teacher_dir} "
                        "has no complete checkpoint)"))
                continue
            try:
                cache = train_method(name, recipe, data, acc, names, own, (student_data, extra_info), cache, progress,
                                     eval_samples)
            except Exception as exc:
                if not keep_going or acc.num_processes > 1:
                    raise       # the other processes of a launch cannot go on in step with this one
                failures[name] = _failed(recipe, name, "method", exc)
                acc.free_memory()       # what the failed method prepared
                continue
            if acc.is_main_process:
                clear_failure(recipe.run_dir, name)
        if not acc.is_main_process:
            return {}
        if baselines:
            from distill.baselines import train_baseline

            remove_stale_temporaries(recipe.run_dir)     # .partial artifact folders of a killed run
            for name in baselines:
                set_seed(recipe.run.seed)
                try:
                    train_baseline(recipe, data, name, force=force)
                except Exception as exc:
                    if not keep_going:
                        raise
                    failures[name] = _failed(recipe, name, "baseline", exc)
                    continue
                clear_failure(recipe.run_dir, name)
    except Exception:
        if acc.is_main_process:
            _write_what_finished(recipe, data, list(failures))
        raise
    return write_results(recipe, data, list(failures))


def _failed(recipe: Recipe, name: str, kind: str, exc: Exception) -> dict:
    """Record one method's or baseline's failure and say it in one paragraph; the run goes on."""
    entry = record_failure(recipe.run_dir, name, kind, exc)
    print(f"[{name}] FAILED, not written: {entry['error']} The run goes on with the others; a re-run retries "
          f"{name} (details: {failure_file(recipe.run_dir, name)}).", flush=True)
    return entry


def _write_what_finished(recipe: Recipe, data: Dataset, tried: list[str]) -> None:
    """metrics.json and results.md for what finished before an error stops the stage (never masking it)."""
    try:
        write_results(recipe, data, tried)
    except Exception as exc:  # noqa: BLE001 - the stage's own error is the one to report
        print(f"(results for what finished were not written: {paragraph(exc)})", flush=True)


def train_method(name: str, recipe: Recipe, data: Dataset, acc, names: list[str], own: dict, students_pool: tuple,
                 cache, progress: bool, eval_samples: int | None):
    """Train one method and save its checkpoint (the main process); returns the shared teacher cache."""
    from accelerate.utils import set_seed

    from distill.train import TeacherCache, setup_method, start_static_table, train

    folder, teacher_dir = model_dir(recipe, name), model_dir(recipe, "teacher")
    if name == "teacher" and not recipe.teacher.fine_tune:
        if acc.is_main_process:
            use_teacher_as_is(recipe, data, folder, acc.device, eval_samples)
        acc.wait_for_everyone()
        return cache
    # Seed before the model is built: a new classification head and LoRA matrices are random,
    # and each method must start the same whether or not other methods trained before it.
    contributions = None
    if name in students() and recipe.methods[name].layers == "auto":
        from distill.layers import layer_analysis

        contributions = layer_analysis(recipe, data, teacher_dir, recipe.methods[name].num_layers)["contribution"]
    set_seed(recipe.run.seed)
    setup = setup_method(name, recipe, data.label_names, teacher_dir if name in students() else None,
                         contributions, progress=progress and acc.is_main_process)
    acc.print(f"[{name}] {setup.info['params_trainable']:,} of {setup.info['params_total']:,} parameters "
              "trainable; "
              f"layers {setup.info['layers']}; loss {setup.info['loss']}")
    start = time.perf_counter()
    student_data, pool_info = students_pool
    train_data = own[name][0] if name in own else training_data(name, data, student_data)
    pool_info = own[name][1] if name in own else pool_info
    if name in own:
        # Its own texts, so its own pass of the teacher: its logits, and the vectors its loss or its table's
        # start reads.
        setup.info["teacher_labelled_pool"] = own[name][1]
        method_cache = TeacherCache(setup.teacher.to(acc.device), setup.teacher_tokenizer or setup.tokenizer,
                                    train_data.train, recipe.data.max_length, recipe.train.eval_batch_size,
                                    acc.device, with_hidden=False, progress=progress and acc.is_main_process,
                                    with_vectors=setup.loss.needs_vectors, with_token_vectors=setup.table_in_context)
    else:
        # A static student reads its own vocabulary: the teacher's outputs always come from the cache.
        if setup.teacher is not None and (recipe.train.cache_teacher or setup.teacher_tokenizer) and cache is None:
            # One pass of the fine-tuned teacher serves every student (its layer outputs and logits).
            # Hidden states only when some student's loss uses them (they take GBs for large pools).
            with_hidden = any((recipe.methods[n].loss or recipe.loss).hidden > 0
                              for n in names if n in students())
            cache = TeacherCache(setup.teacher.to(acc.device), setup.teacher_tokenizer or setup.tokenizer,
                                 student_data.train,
                                 recipe.data.max_length, recipe.train.eval_batch_size, acc.device,
                                 with_hidden=with_hidden,
                                 progress=progress and acc.is_main_process)
        method_cache = cache
    # (a table started in context always has a pass of its own, own_pool_data; the shared cache would refuse it)
    start_static_table(setup, method_cache, original_texts(train_data.train, pool_info),
                       progress and acc.is_main_process)
    if train_data.selection is not None:
        # Held-out pool texts choose the epoch: the teacher labels them once.
        from distill.train import teacher_labelled

        train_data = replace(train_data, selection=teacher_labelled(
            setup, train_data.selection, recipe.data.max_length, recipe.train.eval_batch_size, acc.device,
            progress and acc.is_main_process))
    outcome = train(setup, train_data, recipe.data.max_length, recipe.run.seed, accelerator=acc, progress=progress,
                    cache=method_cache)
    acc.wait_for_everyone()
    if acc.is_main_process:
        if name == "teacher":
            setup.info["fine_tuned"] = True
        entry = {**setup.info, "train_time_s": outcome.train_time_s, "wall_time_s": time.perf_counter() - start,
                 "train_examples_per_s": outcome.train_examples_per_s, "best_epoch": outcome.best_epoch,
                 "epochs": setup.train.epochs, "batch_size": setup.train.batch_size, "lr": setup.train.lr,
                 "warmup_ratio": setup.train.warmup_ratio,
                 "early_stopping_patience": setup.train.early_stopping_patience,
                 "train_examples": len(train_data.train), "labelled_examples": len(data.train),
                 "compute": compute_entry(outcome, setup, method_cache, time.perf_counter() - start),
                 "history": outcome.history, "validation": outcome.validation, "test": outcome.test}
        save_checkpoint(folder, outcome.model, setup.tokenizer, entry, recipe, data.label_names)
        print(f"[{name}] test macro-F1 {outcome.test['macro_f1']:.4f}, accuracy {outcome.test['accuracy']:.4f} "
              f"(best epoch {outcome.best_epoch}, {outcome.train_time_s / 60:.1f} min)")
    acc.wait_for_everyone()
    acc.free_memory()
    return cache


def use_teacher_as_is(recipe: Recipe, data: Dataset, folder: Path, device, eval_samples: int | None = None) -> None:
    """teacher.fine_tune: false: the given classifier, evaluated and saved as the run's teacher."""
    from distill.byo import evaluate_as_is
    from distill.models import param_counts

    start = time.perf_counter()
    got = evaluate_as_is(recipe.teacher.model, data, recipe.data.max_length, recipe.train.eval_batch_size, device,
                         eval_samples, recipe.data.seed)
    counts = param_counts(got["model"])
    entry = {"method": "teacher", "teacher_source": recipe.teacher.model, "source": got["source"],
             "fine_tuned": False, "layers": None, "lora": None, "loss": None, **counts, "params_trainable": 0,
             "train_time_s": 0.0, "wall_time_s": time.perf_counter() - start, "train_examples_per_s": 0.0,
             "best_epoch": None, "epochs": 0, "batch_size": None, "lr": None, "history": {"steps": [], "epochs": []},
             "validation": got["validation"], "test": got["test"], "eval_samples": got["eval_samples"]}
    save_checkpoint(folder, got["model"].cpu(), got["tokenizer"], entry, recipe, data.label_names)
    print(f"[teacher] used as it is (teacher.fine_tune: false, {got['source']}): test macro-F1 "
          f"{got['test']['macro_f1']:.4f}, accuracy {got['test']['accuracy']:.4f}")


def student_dataset(recipe: Recipe, data: Dataset) -> tuple[Dataset, dict]:
    """The students' training data: labelled texts + the unlabelled pool + augmented copies
    (the last two labelled -1: the teacher's soft targets only)."""
    from distill.unlabeled import augment, load_unlabeled, with_extra_texts

    cfg = recipe.data
    pool, info = load_unlabeled(cfg, data)
    extra = list(pool)
    if cfg.augment_copies:
        augmented = augment(data.train.texts, augmentation_tokenizer(recipe), cfg.augment_copies, cfg.augment_prob,
                            cfg.seed)
        extra += augmented
        info = {**info, "augmented": len(augmented)}
    if pool:
        info = {**info, "unlabeled": len(pool)}
    return with_extra_texts(data, extra), info


def augmentation_tokenizer(recipe: Recipe):
    """The teacher's tokenizer: its whole words replace words of an augmented copy, its mask token masks them."""
    from transformers import AutoTokenizer

    from distill.models import resolve_model_source
    from edgedistill.checkpoint import SAFE_LOAD

    return AutoTokenizer.from_pretrained(resolve_model_source(recipe.teacher.model), use_fast=True, **SAFE_LOAD)


def own_pool_data(recipe: Recipe, names: list[str], data: Dataset) -> dict[str, tuple[Dataset, dict]]:
    """The methods whose teacher-labelled texts differ from the students' ones (a static student's
    ``static_pool``, the pool texts it holds out to choose its epoch, its noisy copies), each with its training
    data and pool record; read before any training."""
    out = {}
    for name in names:
        if not is_static(name):
            continue
        m = recipe.methods[name]
        # the teacher's sentence vectors and its vectors per token are not in the students' shared cache: a pass
        # of its own
        vectors = m.static_teacher_vectors > 0 or m.static_init == "context"
        if not recipe.data.unlabeled and not m.static_augment_copies and not vectors:
            continue
        hold = m.static_select_texts if m.static_select == "pool" else 0
        cap = recipe.data.max_unlabeled if m.static_pool is None else m.static_pool
        if cap != recipe.data.max_unlabeled or hold or m.static_augment_copies or vectors:
            out[name] = pool_dataset(recipe, data, cap, hold, m.static_augment_copies)
    return out


def pool_dataset(recipe: Recipe, data: Dataset, cap: int | None, hold: int = 0,
                 augment_copies: int = 0) -> tuple[Dataset, dict]:
    """``student_dataset`` with up to ``cap`` teacher-labelled texts instead of ``data.max_unlabeled``
    (None: the whole source); ``hold`` more pool texts, drawn at random (seeded), are kept out of training
    as the ``selection`` split that chooses the epoch (their labels are the teacher's, filled in by the caller);
    then ``augment_copies`` noisy copies of every training text (labelled and pool, never a held-out one),
    teacher-labelled like the pool."""
    import numpy as np

    from distill.data import Split
    from distill.unlabeled import UNLABELED, augment, with_extra_texts

    total = None if cap is None else cap + hold
    pooled, info = student_dataset(replace(recipe, data=replace(recipe.data, max_unlabeled=total)), data)
    if hold:
        texts, labels = pooled.train.texts, pooled.train.labels
        # The pool's own texts only: augmented copies of labelled texts (also unlabelled, after the pool) never
        # choose.
        pool_idx = np.flatnonzero(labels == UNLABELED)[:info.get("unlabeled", 0)]
        if len(pool_idx) < 2 * hold:
            raise RunError(f"static_select: pool holds out {hold} teacher-labelled texts, but the pool has only "
                           f"{len(pool_idx)}; lower methods.static.static_select_texts or use static_select: "
                           "validation")
        # The data's seed, not the run's: every training seed is chosen on the same held-out texts.
        held = set(np.random.default_rng(recipe.data.seed).choice(pool_idx, size=hold, replace=False).tolist())
        keep = [i for i in range(len(texts)) if i not in held]
        order = sorted(held)
        train = Split([texts[i] for i in keep], labels[keep])
        selection = Split([texts[i] for i in order], np.full(len(order), UNLABELED, dtype=np.int64))
        info = {**info, "unlabeled": int(len(pool_idx) - hold), "held_out_to_choose_the_epoch": hold}
        pooled = replace(pooled, train=train, selection=selection)
    if augment_copies:
        # Copies of what the student trains on, made after the held-out texts left: no copy of a text that
        # chooses the epoch is trained on. A seed of its own, so the copies differ from data.augment_copies'.
        copies = augment(pooled.train.texts, augmentation_tokenizer(recipe), augment_copies, recipe.data.augment_prob,
                         recipe.data.seed + 1)
        pooled = with_extra_texts(pooled, copies)
        info = {**info, "static_augmented": len(copies)}
    return pooled, info


def original_texts(split, pool_info: dict) -> list[str]:
    """A training split's texts without the noisy copies its pool record counts: they come last
    (data.augment_copies', then a static student's own), and a word they repeat is not a word seen again."""
    copies = pool_info.get("augmented", 0) + pool_info.get("static_augmented", 0)
    return split.texts[:len(split.texts) - copies]


def training_data(method: str, data: Dataset, student_data: Dataset) -> Dataset:
    """What a method trains on: distilled students learn from the labelled texts plus the teacher-labelled
    pool and augmented copies; the teacher and LoRA (no teacher in their loss) from the labelled texts only."""
    return student_data if method in students() else data


def compute_entry(outcome, setup, cache, wall_s: float) -> dict:
    """The method's compute: its own training plus the teacher passes it relied on."""
    c = dict(outcome.compute)
    if setup.teacher is not None and cache is not None and not setup.loss.needs_relations:
        c["teacher_forward_flops"] = c.get("teacher_forward_flops", 0.0) + cache.flops   # the cached pass
    c["total_flops"] = c["train_flops"] + c.get("teacher_forward_flops", 0.0)
    c["wall_time_s"] = wall_s
    return c


def save_checkpoint(folder: Path, model, tokenizer, entry: dict, recipe: Recipe, label_names: list[str]) -> None:
    """save_pretrained (merged for LoRA, adapter kept beside it); the marker file goes last."""
    from edgedistill.checkpoint import merged

    with atomic_dir(folder) as tmp:
        if entry.get("lora"):
            model.save_pretrained(tmp / "adapter")
            model = merged(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # Every file's sha256, so that export and bench can tell a checkpoint damaged in place.
        files = file_records(tmp, sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()))
        atomic_write_json(tmp / MARKER, CheckpointMeta.document(entry["method"], label_names, recipe.data.max_length,
                                                               entry, to_dict(recipe), provenance(), files))


def collect_metrics(recipe: Recipe) -> dict:
    out = {}
    for folder in layout.model_folders(recipe.run_dir):
        if checkpoint_complete(folder):
            entry = json.loads((folder / MARKER).read_text())
            out[entry["method"]] = {k: v for k, v in entry.items()
                                    if k not in ("recipe", "schema_version", "max_length")}
    return out


def write_results(recipe: Recipe, data: Dataset | None = None, tried: list[str] | tuple = ()) -> dict:
    """metrics.json, results.md and plots from the run's complete checkpoints and baselines, with the
    recorded failures of the methods and baselines the recipe enables (or ``tried``)."""
    from distill.baselines import collect_baselines
    from distill.report import results_table, write_plots

    models = collect_metrics(recipe)
    models = {m: models[m] for m in ORDER if m in models}
    baselines = collect_baselines(recipe.run_dir)
    # What the recipe trains, has failed and has not finished since (distill/failures.py).
    wanted = dict.fromkeys([*recipe.method_names(), *recipe.baselines.enabled(), *tried])
    failed = collect_failures(recipe.run_dir, [n for n in wanted if n not in models and n not in baselines])
    if not models and not baselines and not failed:
        raise RunError(f"no complete checkpoints in {layout.models_dir(recipe.run_dir)}; train first")
    data = data or load_dataset(recipe.data)
    out = recipe.results_path
    _, extra = student_dataset(recipe, data)
    metrics = {"schema_version": SCHEMA_VERSION, "run": recipe.run.name, "provenance": provenance(),
               "recipe": to_dict(recipe), "data": {**data.summary(), "student_extra_texts": extra}, "models": models,
               # What a user would run instead (distill/baselines.py): each entry has kind "baseline".
               "baselines": baselines,
               # Methods and baselines that failed (each with its one-paragraph reason); a re-run retries them.
               "failed": failed}
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "results.md", results_table(metrics))
    if models:          # the plots draw training curves: a baselines-only run has none
        write_plots(metrics, out / "plots")
    print(f"Wrote {out / 'metrics.json'}, {out / 'results.md'} and plots in {out / 'plots'}")
    return metrics
