"""The client side: typed API for backend code, the `sentinel` CLI and live progress.

Runs outside workflows, so it may use infrastructure (settings, the Temporal connection),
but never a stage's code: everything happens through workflows.
"""
