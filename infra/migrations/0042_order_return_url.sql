-- Where a standalone hosted checkout sends the payer back once the order's payment has settled
-- (`POST /api/v1/orders` `return_url`). Optional; the API accepts only absolute http(s) URLs, and
-- the table refuses anything else too, so no other scheme (`javascript:`) can ever reach a link.

ALTER TABLE orders
    ADD COLUMN return_url text
        CHECK (return_url IS NULL OR (return_url ~ '^https?://' AND length(return_url) <= 2048));
