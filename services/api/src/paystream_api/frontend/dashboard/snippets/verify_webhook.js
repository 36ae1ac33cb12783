const crypto = require("node:crypto");

const TOLERANCE_S = 300;
// Node's base64 decoder never fails, so check validity first (as Python's validate=True does).
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function standardKey(secret) {
  const encoded = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  return BASE64.test(encoded) ? Buffer.from(encoded, "base64") : Buffer.from(encoded, "utf8");
}

function safeEqual(a, b) {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && crypto.timingSafeEqual(left, right);
}

// headers: Node's lower-cased header object; body: the raw Buffer.
function verifyStandard(secrets, body, headers) {
  const msgId = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  if (!msgId || !timestamp || Math.abs(Date.now() / 1000 - Number(timestamp)) > TOLERANCE_S) return false;
  const signed = Buffer.concat([Buffer.from(`${msgId}.${timestamp}.`), body]);
  const received = (headers["webhook-signature"] || "")
    .split(" ")
    .filter((s) => s.startsWith("v1,"))
    .map((s) => s.slice(3));
  return secrets.some((secret) => {
    const expected = crypto.createHmac("sha256", standardKey(secret)).update(signed).digest("base64");
    return received.some((signature) => safeEqual(expected, signature));
  });
}

function verifyLegacy(secrets, body, headers) {
  const received = [headers["x-webhook-signature"], headers["x-webhook-signature-previous"]].filter(Boolean);
  return secrets.some((secret) => {
    const expected = crypto.createHmac("sha256", secret).update(body).digest("hex");
    return received.some((signature) => safeEqual(expected, signature));
  });
}

// Express, say:
// app.post("/webhooks/paystream", express.raw({ type: "application/json" }), (req, res) => {
//   if (!verifyStandard([process.env.PAYSTREAM_WEBHOOK_SECRET], req.body, req.headers)) {
//     return res.sendStatus(400);
//   }
//   const event = JSON.parse(req.body.toString("utf8"));
//   // dedupe on req.headers["webhook-id"], then handle event.event / event.data
//   res.sendStatus(204);
// });

module.exports = { verifyStandard, verifyLegacy };
