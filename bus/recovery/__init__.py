"""Dead letters in, operator replay out."""
