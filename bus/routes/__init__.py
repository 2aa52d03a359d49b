"""routes.yaml: which messages go where — the model, its loader and the router's lookup table."""

from bus.routes.credentials import CredentialError
from bus.routes.durations import format_duration, parse_duration, parse_rate
from bus.routes.loader import Problem, RoutesError, check_routes, load_routes
from bus.routes.model import (
    CircuitPolicy,
    Defaults,
    RetryPolicy,
    Route,
    RouteMatch,
    RoutesConfig,
    Target,
    Timeouts,
)
from bus.routes.table import Explanation, Resolution, RouteVerdict, RoutingTable

__all__ = [
    "CircuitPolicy",
    "CredentialError",
    "Defaults",
    "Explanation",
    "Problem",
    "Resolution",
    "RetryPolicy",
    "Route",
    "RouteMatch",
    "RouteVerdict",
    "RoutesConfig",
    "RoutesError",
    "RoutingTable",
    "Target",
    "Timeouts",
    "check_routes",
    "format_duration",
    "load_routes",
    "parse_duration",
    "parse_rate",
]
