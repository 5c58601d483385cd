"""Template helpers of prepaid credits: the lab's accounts, for the credits section of the
lab's settings page (rendered by machines.views.lab_manage_page, which knows nothing of
credits: the section reads them itself)."""

from __future__ import annotations

from django import template

from machines import credits
from machines.models import CreditAccount, Lab

register = template.Library()


@register.simple_tag
def lab_credit_accounts(lab: Lab) -> list[CreditAccount]:
    return list(credits.credit_accounts_of_lab(lab))
