"""Models built on cgad: GPT-2 (models/gpt.py)."""
from cgad.models.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig"]
