"""Reading and checking one DICOM file: is it a radiograph we can use, and how old was the child?

Pure functions over pydicom datasets, so that ingest, tests and benchmarks share them. Every
rejection is a `Rejected` with a reason a site uploader can act on. Tag values may be PHI, so a
reason (or a warning) quotes one only when it is a defined term of the standard (a modality, a
photometric interpretation, a transfer syntax, a body part) or a number the check is about; any
other value is described.

`reading` parses a file, `checks` decides whether it is a usable radiograph, `subject` whether it
is a human's chest, `pixels` whether its pixel data decode, `age` how old the child was;
`errors` holds `Rejected`, `file_warnings` every warning an accepted file's report line can
carry, and `elements` reads an attribute's value as pydicom would, faster. Tunables
(`reading.DEFER_BYTES`, `pixels.J2K_CHECK_PIXELS`) are read, and so patched, in their modules.
"""

from portal.ingest.dicom.age import (
    Age,
    AgeDisagreement,
    compute_age,
    format_patient_age,
    parse_date,
    patient_age_disagreement,
)
from portal.ingest.dicom.checks import (
    ACCEPTED_TRANSFER_SYNTAXES,
    GRAYSCALE,
    MODALITY_TERMS,
    PHOTOMETRIC_TERMS,
    RADIOGRAPH_MODALITIES,
    Limits,
    check_radiograph,
    transfer_syntax,
)
from portal.ingest.dicom.codestream import (
    JPEG2000_SYNTAXES,
    CodestreamError,
    blank_free_text,
    check_j2k_codestream,
)
from portal.ingest.dicom.errors import Rejected
from portal.ingest.dicom.file_warnings import WARNING_TEXTS, file_warnings
from portal.ingest.dicom.pixels import (
    PIXEL_DATA,
    clean_pixel_data,
    number_of_frames,
    pixel_data_length,
)
from portal.ingest.dicom.reading import (
    NATIVE_FREE_SYNTAXES,
    NOT_DICOM,
    file_meta_values,
    may_need_native_decoder,
    native_decoder_needed,
    plausible_bare_data_set,
    read_dataset,
    read_dataset_from,
)
from portal.ingest.dicom.subject import (
    BODY_PART_TERMS,
    NOT_HUMAN,
    check_subject,
    chest_like,
)
from portal.ingest.outcomes import warning_text

__all__ = [
    "ACCEPTED_TRANSFER_SYNTAXES",
    "BODY_PART_TERMS",
    "GRAYSCALE",
    "JPEG2000_SYNTAXES",
    "MODALITY_TERMS",
    "NATIVE_FREE_SYNTAXES",
    "NOT_DICOM",
    "NOT_HUMAN",
    "PHOTOMETRIC_TERMS",
    "PIXEL_DATA",
    "RADIOGRAPH_MODALITIES",
    "WARNING_TEXTS",
    "Age",
    "AgeDisagreement",
    "CodestreamError",
    "Limits",
    "Rejected",
    "blank_free_text",
    "check_j2k_codestream",
    "check_radiograph",
    "check_subject",
    "chest_like",
    "clean_pixel_data",
    "compute_age",
    "file_warnings",
    "file_meta_values",
    "format_patient_age",
    "may_need_native_decoder",
    "native_decoder_needed",
    "number_of_frames",
    "parse_date",
    "patient_age_disagreement",
    "pixel_data_length",
    "plausible_bare_data_set",
    "read_dataset",
    "read_dataset_from",
    "transfer_syntax",
    "warning_text",
]
