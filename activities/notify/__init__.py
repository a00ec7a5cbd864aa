"""The notification stage: telling people and services about a run's outcome."""

from activities.notify.activity import NotifyActivities

__all__ = ["NotifyActivities"]
