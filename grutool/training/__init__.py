"""Training: one loop for every task, with callbacks for progress, checkpoints and stopping."""
