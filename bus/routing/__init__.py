"""Stage 1: the ingress queue to confirmed copies, one per target (or a dead letter)."""
