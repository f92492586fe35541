"""The dashboard's "Personalised routing by team" card: each team's offset on the learned
router's log-odds of P(good), the feedback behind it and whether it applies (``personal/``)."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from modelmix.personal.store import team_offsets

if TYPE_CHECKING:
    from modelmix.gateway import Gateway

__all__ = ["personal_card", "team_rows"]


def team_rows(gateway: Gateway) -> list[dict[str, Any]]:
    """The teams' rows of ``personal_offsets`` (none when personalisation is off)."""
    if gateway.personal is None:
        return []
    return team_offsets(gateway.config.ledger_location)


def personal_card(data: dict[str, Any]) -> str:
    rows = data.get("personal") or []
    if not rows:
        return ""
    trs = "".join(
        f"<tr><td>{escape(str(r['subject'])[5:])}</td>"
        f"<td class='n'>{float(r['logit_offset']):+.3f}</td>"
        f"<td class='n'>{int(r['n']):,}</td>"
        f"<td class='n'>{float(r['predicted']):.0%}</td>"
        f"<td class='n'>{float(r['accepted']):.0%}</td>"
        f"<td>{'disabled' if r['disabled'] else 'on'}</td></tr>"
        for r in rows
    )
    return (
        '<section class="card"><h2>Personalised routing by team</h2>'
        "<table><tr><th>team</th><th class='n'>offset</th><th class='n'>labelled</th>"
        "<th class='n'>predicted</th><th class='n'>accepted</th><th>state</th></tr>"
        + trs
        + "</table>"
        + '<p class="note">offset on the learned router\'s log-odds of a good answer, learned '
        "from the team's feedback and judgements (shrunk towards the global router, capped); "
        "<code>modelmix policy personal</code> resets or disables it</p></section>"
    )
