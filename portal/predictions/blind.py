"""Blind reading: who may see the model's output for an image, the one rule every route asks.

On a site with `Site.blind_reading`, the model's output for an image (predicted age, residual,
score, heatmap) is hidden from each member of the site, whatever their role, until that member
has saved a decision on the image; then it is shown, for learning. Leads are blinded too: they
adjudicate disputes and settle double reads, and an adjudication made with the model in view
would bring back the circularity the switch removes (they still see both readers' decisions).
Administrators (superusers) are not study readers and see everything.

The rule lives with the outputs, in this app, so that the prediction list here and the image
detail, lists, queue and heatmap of the review app all ask it. "Has decided" reads the review
app's rows through the `Image.reviews` relation, by name: this app never imports review.
"""

from django.db.models import Q

from portal.ingest.models import Image, Site

# A correction "equals the model's output" when it is within a week of the predicted age: what
# reports count and flag as a possible copy (a reader taking the model's age as the answer).
COPY_TOLERANCE_DAYS = 7

# The image detail's keys that carry the model's output (`prediction` holds the heatmap URL,
# `why` the review queue's sentence, which quotes the predicted age and the score).
OUTPUT_KEYS = ("predicted_age_days", "residual_days", "score", "why", "prediction")
# The queue and image list rows' keys that carry it.
ROW_OUTPUT_KEYS = ("predicted_age_days", "residual_days", "score", "why")


def blinded_on(*, user, site: Site) -> bool:
    """Whether the site hides the model's output from `user` on images they have not decided."""
    return site.blind_reading and not (user.is_authenticated and user.is_superuser)


def has_decided(*, user, image: Image) -> bool:
    return image.reviews.filter(reviewer=user).exists()


def output_hidden(*, user, image: Image) -> bool:
    """Whether the model's output for `image` is hidden from `user` now."""
    return blinded_on(user=user, site=image.site) and not has_decided(user=user, image=image)


def hidden_outputs(*, user, site_field: str = "site", image_field: str = "image") -> Q:
    """A filter matching the rows (predictions, images, ...) whose model output `user` may not
    see: on a blind site, an image without a decision of theirs. `image_field` names the row's
    image id (`"pk"` for images)."""
    if user.is_authenticated and user.is_superuser:
        return Q(pk__in=[])
    if not user.is_authenticated:
        return Q(pk__isnull=False)  # everything (an empty Q() would exclude nothing)
    blind_sites = Site.objects.filter(blind_reading=True).values("pk")
    decided = Image.objects.filter(reviews__reviewer=user).values("pk")
    # Subqueries, not joins: a list in scope stays on its own table's indexes.
    return Q(**{f"{site_field}__in": blind_sites}) & ~Q(**{f"{image_field}__in": decided})


def hidden_image_ids(*, user, image_ids: list[int]) -> set[int]:
    """Which of these images' outputs are hidden from `user` (one query, for a page of rows)."""
    if not image_ids:
        return set()
    images = Image.objects.filter(pk__in=image_ids).filter(
        hidden_outputs(user=user, image_field="pk")
    )
    return set(images.values_list("pk", flat=True))


def without_outputs(row: dict, keys: tuple[str, ...] = ROW_OUTPUT_KEYS) -> dict:
    """The row with the model's output taken out: absent, not null, so that nothing reads a
    hidden value as "not predicted"."""
    return {k: v for k, v in row.items() if k not in keys}
