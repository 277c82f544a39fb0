"""Accuracy evaluators: pose, classification, fidelity to the float model, and user evaluators."""
