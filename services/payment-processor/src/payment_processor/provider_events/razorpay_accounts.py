"""Razorpay `fund_account.validation.completed|failed` and `account.instantly_activated|activated_kyc_pending`.

Validations rank `created` < `completed` = `failed` (final). Only the fund account id, the account
status and the registered name are copied out of the entity; the bank account number is not (the
stored raw event keeps what Razorpay sent). Account activation events are appended to
`account_events`. Neither concerns a payment, so neither emits a domain event.
"""

from __future__ import annotations

from typing import Any

from payment_processor.provider_events.fields import razorpay_entity, text
from payment_processor.provider_events.transitions import EntityTable, advance
from payment_processor.provider_events.work import Work

VALIDATIONS = EntityTable(
    name="fund_account_validations", key="validation_id", entity="fund_account_validation", final_rank=30
)
VALIDATION_RANK = {"created": 10, "completed": 30, "failed": 30}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def handle_fund_account_validation(work: Work) -> None:
    validation = razorpay_entity(work.event.payload, "fund_account.validation", required=True)
    assert validation is not None
    status = "completed" if work.event.type.endswith(".completed") else "failed"
    fund_account = _object(validation.get("fund_account"))
    results = _object(validation.get("results"))
    redacted = {key: value for key, value in validation.items() if key != "fund_account"}
    redacted["fund_account"] = {"id": fund_account.get("id"), "entity": fund_account.get("entity")}
    await advance(
        work,
        VALIDATIONS,
        str(validation["id"]),
        status=status,
        rank=VALIDATION_RANK[status],
        columns={
            "fund_account_id": text(fund_account.get("id")),
            "account_status": text(results.get("account_status")),
            "registered_name": text(results.get("registered_name")),
            "entity": redacted,
        },
    )


async def handle_account_event(work: Work) -> None:
    event = work.event
    payload = event.payload.get("payload")
    account: dict[str, Any] | None = None
    if isinstance(payload, dict):
        for name in ("account", "merchant"):
            wrapper = payload.get(name)
            if isinstance(wrapper, dict) and isinstance(wrapper.get("entity"), dict):
                account = wrapper["entity"]
                break
    account_id = text(event.payload.get("account_id")) or (text(account.get("id")) if account else None)
    inserted = await work.conn.fetchval(
        """INSERT INTO account_events
               (provider, event_id, event_type, account_id, merchant_id, entity, provider_event_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (provider, merchant_id, event_id) DO NOTHING RETURNING id""",
        event.provider,
        event.event_id,
        event.type,
        account_id,
        event.merchant_id,
        account,
        event.occurred_at,
    )
    if inserted is not None:
        work.change("account", account_id or "", None, event.type.split(".", 1)[1])
