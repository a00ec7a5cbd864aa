"""Recorded workflow histories, the script that records them and the replay test."""
