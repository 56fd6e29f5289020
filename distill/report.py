"""Training results as a Markdown table (the course project's layout, extended) and PNG plots."""
from __future__ import annotations

from pathlib import Path

from edgedistill.io import atomic_dir


def _fmt(x, digits=4):
    return "n/a" if x is None else f"{x:.{digits}f}"


def results_table(metrics: dict) -> str:
    models = metrics["models"]
    labels = metrics["data"]["label_names"]
    teacher_f1 = models.get("teacher", {}).get("test", {}).get("macro_f1")
    prov = metrics["provenance"]
    lines = [f"# Training results: {metrics['run']}", "",
             f"Test split: {metrics['data']['sizes']['test']} examples ({metrics['data']['origin']}); "
             f"models selected on the validation split ({metrics['data']['sizes']['validation']} examples). "
             f"Commit `{prov['git_commit']}`, {prov['hardware']['label']}.", ""]
    head = ["Model", "Layers", "Trainable params", "Train loss (last epoch)", "Test accuracy", "Macro-F1",
            "% of teacher F1", "ROC-AUC", "PR-AUC"]
    for name in labels:
        head += [f"{name} P", f"{name} R", f"{name} F1"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, m in models.items():
        t = m["test"]
        retained = "n/a" if not teacher_f1 else f"{100 * t['macro_f1'] / teacher_f1:.1f}"
        row = [method, str(m.get("layers") or "all"), f"{m['params_trainable']:,} / {m['params_total']:,}",
               _fmt(m["history"]["epochs"][-1]["train_loss"] if m["history"]["epochs"] else None),
               _fmt(t["accuracy"]), _fmt(t["macro_f1"]), retained,
               _fmt(t["roc_auc"]), _fmt(t["pr_auc"])]
        for name in labels:
            pc = t["per_class"][name]
            row += [_fmt(pc["precision"], 3), _fmt(pc["recall"], 3), _fmt(pc["f1"], 3)]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| Model | Best epoch | Epochs run / max | Batch | LR | Train texts (labelled) | Optimizer steps | "
              "Train time (min) | Train examples/s | Est. PFLOPs (incl. teacher passes) | Loss |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, m in models.items():
        loss = m.get("loss") or {}
        terms = [f"{k} {loss[k]:.3g}" for k in ("ce", "kl", "cosine", "hidden", "attention", "value_relation")
                 if loss.get(k)]
        loss_s = " + ".join(terms) + (f", T={loss['temperature']:g}" if loss.get("kl") else "")
        loss_s += " (reference)" if loss.get("preset") == "reference" else ""
        c = m.get("compute") or {}
        if m.get("fine_tuned") is False:
            lines.append(f"| {method} | - | 0 | - | - | - | 0 | 0.0 | - | - | "
                         f"not trained: {m.get('source')} as given |")
            continue
        flops = f"{c['total_flops'] / 1e15:.2f}" if c.get("total_flops") is not None else "n/a"
        texts = f"{m['train_examples']} ({m['labelled_examples']})" if "train_examples" in m else "n/a"
        lines.append(f"| {method} | {m.get('best_epoch', '-')} | {c.get('epochs_run', '-')} / {m.get('epochs', '-')} | "
                     f"{m.get('batch_size', '-')} | {m.get('lr', '-')} | {texts} | {c.get('optimizer_steps', '-')} | "
                     f"{m.get('train_time_s', 0) / 60:.1f} | {m.get('train_examples_per_s', 0):.0f} | {flops} | "
                     f"{loss_s} |")
    lines += baselines_table(metrics, teacher_f1)
    lines += failed_table(metrics)
    return "\n".join(lines) + "\n"


def failed_table(metrics: dict) -> list[str]:
    """Methods and baselines that failed: not in the tables above, each with its reason."""
    failed = metrics.get("failed") or {}
    if not failed:
        return []
    lines = ["", "**Failed, not written** (the others above are complete; running the same command again retries only "
             "these):", "", "| Name | Kind | Why |", "|---|---|---|"]
    for name, f in failed.items():
        why = str(f.get("error") or "no reason recorded").replace("|", "\\|")
        lines.append(f"| {name} | {f.get('kind') or '-'} | {why} |")
    return lines


def baselines_table(metrics: dict, teacher_f1: float | None) -> list[str]:
    """What a user would run instead, trained on the same labelled split and scored on the same test split."""
    baselines = metrics.get("baselines") or {}
    if not baselines:
        return []
    labels = metrics["data"]["label_names"]
    head = ["Baseline", "Library", "Selected on validation", "Val macro-F1", "Test accuracy", "Macro-F1",
            "% of teacher F1", "ROC-AUC", "PR-AUC", *[f"{name} F1" for name in labels], "Train time (s)",
            "Train CPU (s)"]
    lines = ["", "Baselines (trained on the labelled split only, by their own libraries; not distilled):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, b in baselines.items():
        t = b["test"]
        retained = "n/a" if not teacher_f1 else f"{100 * t['macro_f1'] / teacher_f1:.1f}"
        sel = b.get("selected") or {}
        chosen = ", ".join(f"{k} {v}" for k, v in sel.items() if not isinstance(v, dict) and k != "note") or "-"
        lines.append("| " + " | ".join([
            name, b.get("library", "").split(" (")[0], chosen, _fmt(b["validation"]["macro_f1"]), _fmt(t["accuracy"]),
            _fmt(t["macro_f1"]), retained, _fmt(t["roc_auc"]), _fmt(t["pr_auc"]),
            *[_fmt(t["per_class"][n]["f1"], 3) for n in labels],
            f"{b.get('train_time_s', 0):.1f}", f"{b.get('train_cpu_s', 0):.1f}"]) + " |")
    return lines


def write_plots(metrics: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models, labels = metrics["models"], metrics["data"]["label_names"]
    with atomic_dir(folder) as tmp:
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
        for method, m in models.items():
            steps = m["history"]["steps"]
            if steps:
                axes[0].plot([s["epoch"] for s in steps], [s["loss"] for s in steps], label=method, lw=1)
            ep = m["history"]["epochs"]
            axes[1].plot([e["epoch"] for e in ep], [e["val_loss"] for e in ep], marker="o", label=method)
            axes[2].plot([e["epoch"] for e in ep], [e["val_macro_f1"] for e in ep], marker="o", label=method)
        for ax, title in zip(axes, ["training loss (per logging step)", "validation loss (CE)", "validation macro-F1"]):
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(tmp / "training_curves.png", dpi=110)
        plt.close(fig)

        fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.6), squeeze=False)
        for ax, (method, m) in zip(axes[0], models.items()):
            cm = np.array(m["test"]["confusion_matrix"], dtype=float)
            norm = cm / cm.sum(axis=1, keepdims=True).clip(min=1)
            ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
            for i in range(len(labels)):
                for j in range(len(labels)):
                    ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
            ax.set_yticks(range(len(labels)), labels, fontsize=8)
            ax.set_title(f"{method} (macro-F1 {m['test']['macro_f1']:.3f})", fontsize=9)
            ax.set_xlabel("predicted")
        axes[0][0].set_ylabel("true")
        fig.tight_layout()
        fig.savefig(tmp / "confusion_matrices.png", dpi=110)
        plt.close(fig)
