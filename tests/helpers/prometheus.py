"""Reading a worker's ``/metrics`` the way Prometheus (or ``curl``) does: one HTTP GET."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """One scrape: the raw text and its samples."""

    text: str
    samples: list[tuple[str, dict[str, str], float]]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample ``name`` whose labels include ``labels`` (None when absent)."""
        for sample, sample_labels, value in self.samples:
            if sample == name and all(sample_labels.get(k) == v for k, v in labels.items()):
                return value
        return None

    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}


def scrape(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> Scrape:
    """GET ``http://host:port/metrics`` and parse it (raises OSError when nothing answers)."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as reply:
        text = reply.read().decode()
    samples = [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]
    return Scrape(text, samples)
