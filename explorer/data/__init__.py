"""Datasets: the procedural pose generator, and loaders for user data (.npz files, image folders)."""
