"""Offline validation of deploy/: images, compose stack, Kubernetes manifests."""
