"""The Optuna study over DPU configuration, pruning and split: config, search space, evaluation, loop."""
