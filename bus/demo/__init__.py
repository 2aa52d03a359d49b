"""The demo: stand-in agencies, realistic traffic, and a report of what the bus did with it."""
