"""The development room: the embedded stack, the demo and the synthetic data generator.

Used by `python -m workers.dev`, tests and benchmarks. Worker images do not ship it (see
deploy/docker/*.dockerignore) and product code never imports it (enforced by `make lint`).
"""
