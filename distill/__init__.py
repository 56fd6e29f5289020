"""Training stage: data, teacher fine-tuning, odd/even students, LoRA and hybrid distillation."""
