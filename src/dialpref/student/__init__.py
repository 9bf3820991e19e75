"""Students: small encoders trained on teacher scores over intra-dialogue pairs, then on a little gold."""
