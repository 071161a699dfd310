"""Ages as a person reads them on the pages: `{{ days|age }}` -> "1 y 2 m" (the API and the CSV
exports keep whole days). The text is `inference_worker.ages.years_months_text`, whose
TypeScript twin `yearsMonthsText` the viewer uses, so a page and the viewer agree."""

from django import template

from inference_worker.ages import DAYS_PER_MONTH, years_months_text

register = template.Library()


@register.filter
def age(days) -> str:
    """Whole days as "y m"; empty for no age; anything else as it is."""
    if days is None or days == "":
        return ""
    if isinstance(days, bool) or not isinstance(days, int | float):
        return str(days)
    return years_months_text(days) if days >= 0 else str(days)


@register.filter
def residual(days) -> str:
    """Predicted minus recorded age as signed months, one decimal ("+24.0 months": the model
    says older), as the viewer writes it (frontend/src/ui/review/format.ts, formatResidual)."""
    if days is None or days == "":
        return ""
    months = days / DAYS_PER_MONTH
    return f"{'+' if months >= 0 else '−'}{abs(months):.1f} months"
