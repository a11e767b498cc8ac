"""Validate deploy/'s manifests against the Kubernetes API's own models."""
