-- Which merchant (and salon) an invoice belongs to: written in the same transaction as the payment
-- that names it, read by the notifier before it lets a socket join `payment:<invoiceId>`.
-- invoiceId is the merchant's order_id for API payments, invoiceNo for PAYable, and the order or
-- invoice id for Razorpay. Invoice ids are only unique per merchant.

CREATE TABLE invoice_owners (
    merchant_id text        NOT NULL,
    invoice_id  text        NOT NULL,
    salon_id    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, invoice_id)
);
