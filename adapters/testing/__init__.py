"""Stand-in agency systems and fakes for testing adapters; never used in production."""
