"""An image's history in words: decisions ("lena adjudicated: corrected the age to 3 y 11 m")
and audit events as readable `field: old -> new` text, never a dict's repr. The viewer's
history (`text` of the reviews and audit API rows) and the audit page read the same wording.

Ages show as years and months through the one age formatter (`inference_worker.ages`)."""

from datetime import datetime

from inference_worker.ages import years_months_text
from portal.accounts.models import AuditEvent
from portal.review.models import Decision, ExclusionReason, Kind, Review

_KIND = {
    Kind.SINGLE: "",
    Kind.FIRST_READ: "first read",
    Kind.SECOND_READ: "second read",
    Kind.ADJUDICATION: "adjudication",
}
# Keys of a decision event's `after` that the words already say.
_DECISION_KEYS = ("kind", "decision", "age_days", "reason", "blind")
# The fields of a case's state, in the order people read them; other fields follow by name.
_FIRST = ("status", "outcome", "curated_age_days", "revision")
_LABELS = {
    "curated_age_days": "curated age",
    "age_days": "age",
    "expires_at": "held until",
    "double_reading": "double reading",
    "blind_reading": "blind reading",
}
_READS = {
    "image.view": "opened the image",
    "image.dicom": "downloaded the DICOM file",
    "image.heatmap": "loaded the heatmap",
    "image.preview": "loaded the preview",
    "lease.take": "took the case",
    "lease.release": "released the case",
}


def age_text(days: int | None) -> str:
    return "—" if days is None else years_months_text(days)


def decision_words(
    *, decision: str, age_days: int | None, reason: str = "", comment: str = ""
) -> str:
    """ "corrected the age to 5 y 3 m", "confirmed the recorded age, 7 y 2 m", "excluded the
    image: poor quality", with the reader's comment as its reason."""
    if decision == Decision.CORRECT:
        words = f"corrected the age to {age_text(age_days)}"
    elif decision == Decision.CONFIRM:
        words = "confirmed the recorded age"
        if age_days is not None:
            words += f", {age_text(age_days)}"
    elif decision == Decision.EXCLUDE:
        words = "excluded the image"
        if reason:
            label = ExclusionReason(reason).label if reason in ExclusionReason.values else reason
            words += f": {label}"
    else:
        words = str(decision)
    if comment.strip():
        words += f"; reason: “{comment.strip()}”"
    return words


def _read_note(kind: str, blind: bool) -> str:
    notes = [n for n in (_KIND.get(kind, kind), "blind" if blind else "") if n]
    return f" ({', '.join(notes)})" if notes else ""


def review_text(review: Review) -> str:
    """One decision as a sentence: "alice corrected the age to 5 y 3 m (first read, blind)"."""
    who = review.reviewer.get_username()
    words = decision_words(
        decision=review.decision,
        age_days=review.age_days,
        reason=review.reason,
        comment=review.comment,
    )
    if review.kind == Kind.ADJUDICATION:
        return f"{who} adjudicated: {words}{_read_note('', review.blind)}"
    return f"{who} {words}{_read_note(review.kind, review.blind)}"


def _value(key: str, value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key.endswith("age_days") and isinstance(value, int):
        return age_text(value)
    if key.endswith("_at") and isinstance(value, str):
        try:
            return f"{datetime.fromisoformat(value):%Y-%m-%d %H:%M} UTC"
        except ValueError:
            return value
    if isinstance(value, dict):
        inner = "; ".join(f"{_label(k)}: {_value(k, v)}" for k, v in value.items())
        return f"({inner})" if inner else "—"
    if isinstance(value, list | tuple):
        return ", ".join(_value(key, v) for v in value) or "—"
    if key == "status":
        return str(value).replace("_", " ")
    return str(value)


def _label(key: str) -> str:
    return _LABELS.get(key, key.replace("_", " "))


def change_text(before: dict | None, after: dict | None, *, skip: tuple[str, ...] = ()) -> str:
    """What an event changed, as `field: old -> new` (a field only in `after`: `field: new`),
    fields that stayed the same left out."""
    before, after = before or {}, after or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return f"{_value('', before)} -> {_value('', after)}"
    parts = []
    # One order on every database (PostgreSQL's jsonb keeps keys in its own order).
    keys = sorted({*before, *after}, key=lambda k: (_FIRST.index(k) if k in _FIRST else 99, k))
    for key in keys:
        if key in skip:
            continue
        old, new = before.get(key), after.get(key)
        if key in before and key in after and old == new:
            continue
        if key not in before:
            parts.append(f"{_label(key)}: {_value(key, new)}")
        elif key not in after:
            parts.append(f"{_label(key)}: {_value(key, old)} -> (removed)")
        else:
            parts.append(f"{_label(key)}: {_value(key, old)} -> {_value(key, new)}")
    return ", ".join(parts)


def event_text(event: AuditEvent) -> str:
    """One audit event in words: who did what, then what changed."""
    who = event.actor_name or "the system"
    after = event.after if isinstance(event.after, dict) else {}
    if event.action.startswith("review."):
        words = decision_words(
            decision=after.get("decision", event.action.removeprefix("review.")),
            age_days=after.get("age_days"),
            reason=after.get("reason") or "",
        )
        kind = after.get("kind", "")
        if kind == Kind.ADJUDICATION:
            head = f"{who} adjudicated: {words}{_read_note('', bool(after.get('blind')))}"
        else:
            head = f"{who} {words}{_read_note(kind, bool(after.get('blind')))}"
        changes = change_text(event.before, event.after, skip=_DECISION_KEYS)
    else:
        target = f" {event.target}" if event.target else ""
        head = f"{who} {_READS.get(event.action, event.action)}{target}"
        changes = change_text(event.before, event.after)
    return f"{head}: {changes}" if changes else head
