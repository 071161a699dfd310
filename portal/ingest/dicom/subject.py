"""Whether a radiograph is of the age model's subject: a human child's chest.

Attribute lookups only (no pixels), so these run before any decode. Species and breed values
may be PHI (a pet's breed and registration number identify its owner), so a reason never
quotes them; a body part is quoted only when it is a defined term of the standard.
"""

import re
import unicodedata
from collections.abc import Collection

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from portal.ingest.dicom.errors import Rejected

NOT_HUMAN = "not a human subject (species or breed attributes present); only children's chest films"

# PatientSpeciesDescription values that say "human", compared case-insensitively after strip.
HUMAN_SPECIES_DESCRIPTIONS = frozenset({"homo sapiens", "human"})
# PatientSpeciesCodeSequence codes for Homo sapiens (CID 7454): SNOMED CT 337915000, and the
# retired SNOMED RT code L-85B00 that older files carry.
HUMAN_SPECIES_CODES = frozenset({("SCT", "337915000"), ("SRT", "L-85B00"), ("SNM3", "L-85B00")})
# Present only for an animal (PS3.3 C.7.1.1: required "if the Patient is an animal"): any
# value of these refuses the file, whatever the species says. PatientBreedDescription,
# PatientBreedCodeSequence, BreedRegistrationSequence.
BREED_TAGS = (0x00102292, 0x00102293, 0x00102294)
SPECIES_DESCRIPTION, SPECIES_CODES = 0x00102201, 0x00102202  # PatientSpecies...
BODY_PART_EXAMINED = 0x00180015
ANATOMIC_REGION = 0x00082218  # AnatomicRegionSequence: the coded body part (PS3.3 C.8.11.5)
# Codes of the chest and the lungs in CID 4031 (Common Anatomic Regions) and CID 4009 (DX
# Anatomy Imaged), current SNOMED CT and the retired SNOMED RT ones that older films carry.
CHEST_REGION_CODES = frozenset(
    {
        ("SCT", "51185008"),  # Thorax (Chest)
        ("SCT", "43799004"),  # Thorax, older "Chest" concept
        ("SCT", "302551006"),  # Entire thorax
        ("SCT", "39607008"),  # Lung
        ("SCT", "181216001"),  # Entire lung
        ("SRT", "T-D3000"),  # Chest
        ("SRT", "T-28000"),  # Lung
        ("SNM3", "T-D3000"),
        ("SNM3", "T-28000"),
    }
)
_CODE_VALUE = re.compile(r"[A-Z0-9.-]{1,16}")

# Defined terms of Body Part Examined (0018,0015): PS3.16 Annex L (Table L-1, the body parts
# of CID 4031 Common Anatomic Regions, current and earlier editions). Only these are quoted.
_BODY_PART_TERMS = (
    "ABDOMEN ABDOMENPELVIS ACJOINT ADRENAL ANKLE AORTA ARM AXILLA BACK BILEDUCT BLADDER BRAIN "
    "BREAST BRONCHUS BUTTOCK CALCANEUS CALF CAROTID CEREBELLUM CERVIX CHEEK CHEST CHESTABDOMEN "
    "CHESTABDPELVIS CIRCLEOFWILLIS CLAVICLE COCCYX COLON CORNEA CORONARYARTERY CSPINE CTSPINE "
    "DUODENUM EAR ELBOW ESOPHAGUS EXTREMITY EYE EYELID FACE FEMUR FIBULA FINGER FOOT FOREARM "
    "GALLBLADDER HAND HEAD HEADNECK HEART HIP HUMERUS IAC ILEUM ILIUM JAW JEJUNUM KIDNEY KNEE "
    "LARGEINTESTINE LARYNX LEG LIVER LSPINE LSSPINE LUNG MASTOID MAXILLA MEDIASTINUM MOUTH NECK "
    "NECKCHEST NECKCHESTABDOMEN NECKCHESTABDPELV NOSE OPTICCANAL ORBIT OVARY PANCREAS PAROTID "
    "PATELLA PELVIS PENIS PHARYNX PROSTATE RADIUS RADIUSULNA RECTUM RIB SCALP SCAPULA SCJOINT "
    "SCLERA SCROTUM SELLA SESAMOID SHOULDER SIJOINT SKULL SMALLINTESTINE SPINE SPLEEN SSPINE "
    "STERNUM STOMACH SUBMANDIBULAR TESTIS THIGH THUMB THYMUS THYROID TIBIA TIBIAFIBULA TLSPINE "
    "TMJ TOE TONGUE TRACHEA TSPINE ULNA UPRURINARYTRACT URETER URETHRA UTERUS VAGINA VULVA "
    "WHOLEBODY WRIST ZYGOMA"
)
BODY_PART_TERMS = frozenset(_BODY_PART_TERMS.split())
# Words that name the chest: the defined terms CHEST and LUNG, and what real films write in
# their place (THORAX in German and French, TORAX/TÓRAX in Spanish and Portuguese, TORACE in
# Italian; accents are dropped before comparing).
CHEST_WORDS = frozenset({"CHEST", "THORAX", "TORAX", "TORACE", "LUNG", "LUNGS"})
# Words that name another region: every defined term but the chest's, and the everyday forms
# sites write beside CHEST ("CHEST/ABD", "CHEST_TO_PELVIS", "CHEST ABDOMEN").
OTHER_REGION_WORDS = (BODY_PART_TERMS - CHEST_WORDS) | {"ABD", "ABDO", "PELV", "BODY"}
CHEST_EXPECTED = "expected CHEST, THORAX or LUNG"


def check_subject(ds: Dataset) -> None:
    """Raise Rejected unless the film may be a human child's chest: no species other than
    human, no breed, and a Body Part Examined and an Anatomic Region Sequence, when there are
    any, that name the chest."""
    keys = ds.keys()  # a tag's presence is a dict lookup; a keyword's costs far more
    if not _human(ds, keys):
        raise Rejected(NOT_HUMAN)
    body_part = _text(_value(ds, keys, BODY_PART_EXAMINED)).strip()
    if body_part and not chest_like(body_part):
        term = body_part.upper()
        named = term if term in BODY_PART_TERMS else "(not a defined term)"
        raise Rejected(
            f"BodyPartExamined {named} is not the chest ({CHEST_EXPECTED}); "
            "only children's chest films"
        )
    other = _other_region_code(_value(ds, keys, ANATOMIC_REGION))
    if other is not None:
        raise Rejected(
            f"AnatomicRegionSequence codes {other}, not the chest (expected SNOMED "
            "51185008 Thorax, 39607008 Lung or their SNOMED RT codes); only children's chest films"
        )


def _other_region_code(items: object) -> str | None:
    """The first coded region that is not the chest, as "SCHEME VALUE" (codes are never
    PHI; an odd value is not quoted), or None when every item is the chest or says nothing.
    An item whose code is unknown here but whose meaning names the chest counts as the
    chest."""
    if not _given(items):
        return None
    for item in items:
        scheme = _text(item.get("CodingSchemeDesignator")).strip().upper()
        value = _text(item.get("CodeValue")).strip().upper()
        if not value or (scheme, value) in CHEST_REGION_CODES:
            continue
        if chest_like(_text(item.get("CodeMeaning"))):
            continue
        code = f"{scheme} {value}" if _CODE_VALUE.fullmatch(value) else "(a code)"
        return code if _CODE_VALUE.fullmatch(scheme) else "(a code)"
    return None


def chest_like(body_part: str) -> bool:
    """Whether a Body Part Examined value names the chest and nothing else: one of its words
    (split at anything but letters and digits, accents dropped, case ignored) is a chest word
    and none names another region. "CHEST", "Thorax", "CHEST PA", "TÓRAX AP" are the chest;
    "CHESTABDOMEN", "CHEST_TO_PELVIS", "TSPINE", "HAND" and unknown words alone are not."""
    if body_part.strip().upper() in CHEST_WORDS:  # most films: one word, no accent
        return True
    folded = unicodedata.normalize("NFKD", body_part).encode("ascii", "ignore").decode()
    words = set(re.findall(r"[A-Z0-9]+", folded.upper()))
    return bool(words & CHEST_WORDS) and not words & OTHER_REGION_WORDS


def _human(ds: Dataset, keys: Collection[int]) -> bool:
    """False when a breed is given, or a species that is not Homo sapiens. Empty elements say
    nothing (some systems write every Patient Module attribute, empty) and are ignored."""
    if any(_given(_value(ds, keys, tag)) for tag in BREED_TAGS):
        return False
    description = _text(_value(ds, keys, SPECIES_DESCRIPTION))
    if description.strip() and description.strip().casefold() not in HUMAN_SPECIES_DESCRIPTIONS:
        return False
    codes = _value(ds, keys, SPECIES_CODES)
    if _given(codes):
        for item in codes:
            if not len(item):
                continue  # an empty item names no species
            scheme = _text(item.get("CodingSchemeDesignator")).strip().upper()
            value = _text(item.get("CodeValue")).strip().upper()
            if (scheme, value) not in HUMAN_SPECIES_CODES:
                return False
    return True


def _value(ds: Dataset, keys: Collection[int], tag: int) -> object:
    """The element's value, None when it is absent (most films: nothing is converted)."""
    return ds[tag].value if tag in keys else None


def _given(value: object) -> bool:
    if isinstance(value, Sequence):
        return any(len(item) for item in value)
    return bool(_text(value).strip())


def _text(value: object) -> str:
    """A value as text: the values of a multi-valued one joined by a space, bytes (an element
    of VR UN) as Latin-1; "" for none."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return " ".join(_text(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\0")
    return str(value)
