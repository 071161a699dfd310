"""A checkpoint is a folder: `weights.pt` (a state dict, loaded with weights_only=True) and
`model_card.json` (architecture, input size, normalisation, training data, metrics, sha256)."""

import hashlib
import json
from pathlib import Path

import torch

from inference_worker.model import ResNet, build_model

WEIGHTS = "weights.pt"
CARD = "model_card.json"


class CheckpointError(Exception):
    """A checkpoint folder that is missing, malformed or altered."""


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def save(folder: Path, model: ResNet, card: dict) -> dict:
    """Write weights, then the card with their hash (the card is written last, atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS}.tmp"
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    tmp.replace(folder / WEIGHTS)
    card = {**card, "weights": WEIGHTS, "sha256": sha256_of(folder / WEIGHTS)}
    tmp_card = folder / f".{CARD}.tmp"
    tmp_card.write_text(json.dumps(card, indent=2, sort_keys=True))
    tmp_card.replace(folder / CARD)
    return card


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


def load(folder: Path, device: torch.device | str = "cpu") -> tuple[ResNet, dict]:
    """Model in eval mode on `device`, and its card; refuses weights that were altered."""
    card = verify(folder)
    model = build_model(card["architecture"], width=card.get("width", 64))
    state = torch.load(Path(folder) / card["weights"], map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), card
