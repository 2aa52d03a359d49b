"""routes.yaml fixtures for the unit tests, and a small stand-in for the unit table."""
