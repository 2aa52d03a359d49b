"""dvc-bus: the integration bus between the national public-service portal and agency systems."""

__version__ = "0.1.0"
