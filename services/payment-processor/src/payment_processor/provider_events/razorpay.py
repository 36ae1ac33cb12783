"""Every Razorpay event type we handle, and its handler. A type not listed is stored and `ignored`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from payment_processor.provider_events.razorpay_accounts import (
    handle_account_event,
    handle_fund_account_validation,
)
from payment_processor.provider_events.razorpay_disputes import handle_dispute, handle_downtime
from payment_processor.provider_events.razorpay_orders import (
    handle_invoice,
    handle_order_notification,
    handle_order_paid,
    handle_payment_link,
)
from payment_processor.provider_events.razorpay_payments import handle_payment
from payment_processor.provider_events.razorpay_refunds import handle_refund
from payment_processor.provider_events.work import Work

EventHandler = Callable[[Work], Awaitable[None]]

RAZORPAY_HANDLERS: Mapping[str, EventHandler] = {
    "payment.authorized": handle_payment,
    "payment.captured": handle_payment,
    "payment.failed": handle_payment,
    "payment.dispute.created": handle_dispute,
    "payment.dispute.won": handle_dispute,
    "payment.dispute.lost": handle_dispute,
    "payment.dispute.closed": handle_dispute,
    "payment.dispute.under_review": handle_dispute,
    "payment.dispute.action_required": handle_dispute,
    "payment.downtime.started": handle_downtime,
    "payment.downtime.updated": handle_downtime,
    "payment.downtime.resolved": handle_downtime,
    "order.paid": handle_order_paid,
    "order.notification.delivered": handle_order_notification,
    "order.notification.failed": handle_order_notification,
    "invoice.paid": handle_invoice,
    "invoice.partially_paid": handle_invoice,
    "invoice.expired": handle_invoice,
    "fund_account.validation.completed": handle_fund_account_validation,
    "fund_account.validation.failed": handle_fund_account_validation,
    "refund.created": handle_refund,
    "refund.processed": handle_refund,
    "refund.failed": handle_refund,
    "refund.speed_changed": handle_refund,
    "account.instantly_activated": handle_account_event,
    "account.activated_kyc_pending": handle_account_event,
    "payment_link.paid": handle_payment_link,
    "payment_link.partially_paid": handle_payment_link,
    "payment_link.expired": handle_payment_link,
    "payment_link.cancelled": handle_payment_link,
}
