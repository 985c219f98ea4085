"""tuneyard: self-hosted post-training and OpenAI-compatible serving for open LLMs."""

__version__ = "0.1.0"
