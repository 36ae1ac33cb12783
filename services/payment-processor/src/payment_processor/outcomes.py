"""How long an API payment or refund takes to settle, and whether a payment succeeds.

This is the simulated bank behind the merchant API. Test mode (`TEST_MODE=true`) is deterministic:
`TEST_PROCESSING_DELAY` ms and `TEST_PAYMENT_SUCCESS`. Otherwise: a random delay between 5 and 10 s,
UPI succeeding 90% and card 95% of the time (see `SettlementSettings`). Refunds always succeed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from payment_processor.settings import SettlementSettings
from paystream.settings import TestModeSettings

PAYMENT_DECLINED = "PAYMENT_DECLINED"
ORDER_ALREADY_PAID = "ORDER_ALREADY_PAID"

_DECLINE_DESCRIPTIONS = {
    "upi": "The payment was declined by the customer's bank (UPI)",
    "card": "The payment was declined by the card's issuing bank",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "success" or "failed"
    error_code: str | None = None
    error_description: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "success"


SUCCESS = Outcome("success")
ORDER_PAID_BY_ANOTHER_PAYMENT = Outcome(
    "failed", ORDER_ALREADY_PAID, "The order was already paid by another payment"
)


class OutcomePolicy:
    """Draws processing delays and payment outcomes."""

    def __init__(
        self,
        test_mode: TestModeSettings,
        settlement: SettlementSettings,
        rng: random.Random | None = None,
    ) -> None:
        self._test_mode = test_mode
        self._settlement = settlement
        self._rng = rng or random.Random()

    def delay_seconds(self) -> float:
        if self._test_mode.enabled:
            return self._test_mode.processing_delay_ms / 1000
        low, high = self._settlement.delay_min_ms, self._settlement.delay_max_ms
        return self._rng.uniform(low, high) / 1000

    def payment_outcome(self, method: str) -> Outcome:
        if self._test_mode.enabled:
            succeeded = self._test_mode.payment_success
        else:
            rate = (
                self._settlement.upi_success_rate if method == "upi" else self._settlement.card_success_rate
            )
            succeeded = self._rng.random() < rate
        if succeeded:
            return SUCCESS
        return Outcome(
            "failed", PAYMENT_DECLINED, _DECLINE_DESCRIPTIONS.get(method, "The payment was declined")
        )
