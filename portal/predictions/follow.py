"""A command's progress bar over prediction jobs: the `report`, `federated_report` and
`calibrate` commands wait with it for the predictions they queued."""

import time
from collections.abc import Iterable
from typing import TextIO

from tqdm import tqdm

from portal.predictions.models import PredictionJob


def follow_jobs(
    job_ids: Iterable[int], *, out: TextIO, desc: str = "predicting missing images"
) -> None:
    """Show the jobs' images predicted out of their total on `out` until every job ended."""
    ids = list(job_ids)
    if not ids:
        return
    with tqdm(unit="image", desc=desc, file=out) as bar:
        while True:
            jobs = list(PredictionJob.objects.filter(pk__in=ids))
            bar.total = sum(j.total for j in jobs)
            bar.update(sum(j.done_count + j.failed_count for j in jobs) - bar.n)
            if all(j.finished_at is not None for j in jobs):
                return
            time.sleep(1)
