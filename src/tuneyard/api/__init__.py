"""HTTP surfaces: the Veri-style ``/v1`` API and the Synth/OpenAI-compatible ``/api/v1`` API."""
