"""The model card side of a checkpoint folder, torch-free so that the portal verifies a checkpoint
exactly as the workers do: the card is JSON, and the weights must match its sha256."""

import hashlib
import json
from pathlib import Path

WEIGHTS = "weights.pt"
CARD = "model_card.json"


class CheckpointError(Exception):
    """A checkpoint folder that is missing, malformed or altered."""


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_card(folder: Path) -> dict:
    path = Path(folder) / CARD
    if not path.exists():
        raise CheckpointError(f"{path}: no model card")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not JSON ({exc})") from exc


def verify(folder: Path) -> dict:
    """The card, once the weights' sha256 matches it."""
    card = read_card(folder)
    weights = Path(folder) / card.get("weights", WEIGHTS)
    if not weights.exists():
        raise CheckpointError(f"{weights}: missing")
    actual = sha256_of(weights)
    if actual != card.get("sha256"):
        raise CheckpointError(
            f"{weights}: sha256 {actual} does not match the model card ({card.get('sha256')})"
        )
    return card
