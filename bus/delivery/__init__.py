"""Stage 2: a target's queue to the agency, with its limits, retries and order."""
