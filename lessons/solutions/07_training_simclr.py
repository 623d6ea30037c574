def my_warmup_cosine(step, total_steps, warmup_steps, base_lr):
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps + 1) / (total_steps - warmup_steps)
    return 0.5 * base_lr * (1 + np.cos(np.pi * progress))
