"""Sums of samples in a Prometheus /metrics text, for the targets whose nodes export one (raftkv, etcd)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample_sums(text: str, names: dict[str, str]) -> dict[str, int]:
    """{our name: the sum over labels of sample `names[our name]`} for the samples present in `text`.

    Sample names are as exposed, suffix included (`raftkv_fsync_seconds_count`,
    `raftkv_peer_messages_sent_total`); a sample the text lacks is left out.
    A malformed text gives {} rather than an exception: a node answering
    half a body is a node that did not report.
    """
    wanted = {sample: ours for ours, sample in names.items()}
    out: dict[str, int] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                ours = wanted.get(sample.name)
                if ours is not None:
                    out[ours] = out.get(ours, 0) + int(sample.value)
    except (ValueError, TypeError):
        return {}
    return out


async def metrics_counters(url: str, names: dict[str, str], timeout: float) -> dict[str, int] | None:
    """sample_sums of the /metrics page at url; None when it does not answer 200."""
    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            resp = await http.get(url)
    except httpx.HTTPError:
        return None
    return sample_sums(resp.text, names) if resp.status_code == 200 else None
