"""Warnings: what an accepted file's report line points out without refusing the file.

The one list of warning texts. A warning is about a file that is usable but doubtful, for the
site to look at (its `UploadFile.warning`, shown by the upload page, the API and the CLI). Like
a rejection's reason, a warning never quotes a tag value that may be PHI: only numbers the
check is about. A new warning is a template here and a line in `file_warnings`.
"""

from pydicom.dataset import Dataset

from portal.ingest.dicom.age import patient_age_disagreement
from portal.ingest.outcomes import Age

# PatientAge (AS) and the age from the birth and study dates differ by more than one unit of
# PatientAge's own: the dates are used, as always when they are there.
AGE_DISAGREES = "PatientAge says {patient_age}; the dates say {dates} (the dates are used)"

# Every warning text, for the docs (docs/ingest.md) and the tests.
WARNING_TEXTS = (AGE_DISAGREES,)


def file_warnings(ds: Dataset, age: Age) -> tuple[str, ...]:
    """The warnings for a file that passed every check (attribute lookups only)."""
    warnings: list[str] = []
    disagreement = patient_age_disagreement(ds, age)
    if disagreement is not None:
        warnings.append(
            AGE_DISAGREES.format(patient_age=disagreement.patient_age, dates=disagreement.dates)
        )
    return tuple(warnings)
