"""Shipped aids for agency teams: the conformance kit and the adapter skeleton.

Never imported by the runtime (router, dispatcher); only by the CLI and tests.
"""
