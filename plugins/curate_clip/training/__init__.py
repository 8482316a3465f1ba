"""Reproducible training of the world CLIP with the real client, ``open_clip_train``."""
