"""Next-user-utterance models (ProUtt stage 2): train (SFT, DPO), predict, evaluate."""
