"""A checkpoint is a folder: `weights.pt` (a state dict, loaded with weights_only=True) and
`model_card.json` (architecture, input size, normalisation, training data, metrics, sha256)."""

import json
from pathlib import Path

import torch

from inference_worker.card import CARD, WEIGHTS, CheckpointError, read_card, sha256_of, verify
from inference_worker.model import ResNet, build_model

__all__ = [
    "CARD",
    "WEIGHTS",
    "CheckpointError",
    "load",
    "model_options",
    "read_card",
    "save",
    "sha256_of",
    "verify",
]


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


def model_options(card: dict) -> dict:
    """`build_model`'s arguments for the model a card describes (cards written before a field
    existed mean its default)."""
    return {
        "arch": card["architecture"],
        "width": card.get("width", 64),
        "pool": card.get("pool", "avg"),
    }


def load(folder: Path, device: torch.device | str = "cpu") -> tuple[ResNet, dict]:
    """Model in eval mode on `device`, and its card; refuses weights that were altered."""
    card = verify(folder)
    model = build_model(**model_options(card))
    state = torch.load(Path(folder) / card["weights"], map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), card
