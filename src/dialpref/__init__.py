"""dialpref: LLM preferences over conversations, distilled into small dialogue models."""

__version__ = "0.1.0"
