"""axe-core, run in the page: the accessibility rules a browser test checks every page with.

The script is the `axe-core` devDependency of the front end (`make setup` runs `npm ci`), read
from frontend/node_modules, never fetched."""

import json
from pathlib import Path

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parents[2] / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
# Findings at these impacts fail a test; "moderate" and "minor" ones are reported only.
BLOCKING = ("serious", "critical")
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_findings(page: Page) -> list[dict]:
    """Every violation axe-core finds on the page as it is now (WCAG 2.1 A and AA rules and
    axe's best practices), as {id, impact, help, targets}."""
    if not AXE.exists():
        raise AssertionError(f"{AXE} is missing: run `make setup` (npm ci in frontend/)")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated, not added as a <script>: the portal's Content-Security-Policy allows no
        # script from elsewhere, and evaluate() runs in the page whatever the policy says.
        page.evaluate(AXE.read_text())
    return page.evaluate(
        """async (tags) => {
            const result = await window.axe.run(document, {runOnly: {type: "tag", values: tags}});
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
            }));
        }""",
        TAGS,
    )


def assert_accessible(page: Page, what: str = "") -> list[dict]:
    """Fails with the serious and critical findings on the page; returns the others."""
    findings = axe_findings(page)
    blocking = [f for f in findings if f["impact"] in BLOCKING]
    assert not blocking, f"axe on {what or page.url}:\n" + json.dumps(blocking, indent=1)
    return findings


def keyboard_gaps(page: Page) -> list[str]:
    """Controls a mouse can use and the keyboard cannot reach: visible elements that show the
    pointer cursor, yet neither they, the control a label names, nor a link or button around
    them takes focus (a file input hidden behind a button-like label, a clickable div)."""
    return page.evaluate(
        """() => {
            const reachable = (e) => !!e && e.tabIndex >= 0 && !e.disabled && !e.hidden
                && e.getClientRects().length > 0
                && getComputedStyle(e).visibility !== "hidden";
            const gaps = [];
            for (const e of document.body.querySelectorAll("*")) {
                const shown = e.getClientRects().length > 0;
                if (getComputedStyle(e).cursor !== "pointer" || !shown) continue;
                if (reachable(e) || e.closest("a[href], button:not(:disabled), summary")) continue;
                const label = e.closest("label");
                if (label && reachable(label.control)) continue;
                gaps.push(e.outerHTML.slice(0, 120));
            }
            return gaps;
        }"""
    )
