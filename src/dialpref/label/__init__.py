"""Teacher labelling of utterances: task specs, prompts, and per-utterance soft scores."""
