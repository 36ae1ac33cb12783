import base64
import binascii
import hashlib
import hmac
import time

TOLERANCE_S = 300


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:  # not base64, like the test secret `whsec_test_abc123`
        return encoded.encode()


def verify_standard(secrets: list[str], body: bytes, headers) -> bool:
    """Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    received = [s.partition(",")[2] for s in headers["webhook-signature"].split(" ") if s.startswith("v1,")]
    for secret in secrets:
        expected = base64.b64encode(hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, signature) for signature in received):
            return True
    return False


def verify_legacy(secrets: list[str], body: bytes, headers) -> bool:
    """`X-Webhook-Signature` (and, during a rotation, `X-Webhook-Signature-Previous`)."""
    received = [headers.get("X-Webhook-Signature", ""), headers.get("X-Webhook-Signature-Previous", "")]
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if any(signature and hmac.compare_digest(expected, signature) for signature in received):
            return True
    return False


# Flask, say:
# @app.post("/webhooks/paystream")
# def paystream_webhook():
#     body = request.get_data()  # the raw bytes
#     if not verify_standard([os.environ["PAYSTREAM_WEBHOOK_SECRET"]], body, request.headers):
#         abort(400)
#     event = json.loads(body)
#     ...  # dedupe on request.headers["webhook-id"], then handle event["event"] / event["data"]
#     return "", 204
