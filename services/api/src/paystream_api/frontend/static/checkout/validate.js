// Field checks of the hosted checkout, the same rules as the API's (paystream_api.payments and
// paystream_api.cards), so that a payer sees a mistake while typing instead of after paying.
//
// Every check returns { value, error, definite }: `error` is null when the field is valid;
// `definite` says the mistake cannot be fixed by typing on (a failed Luhn check on a full number,
// a month of 13), so it is shown at once; other errors (too short so far) wait for the payer to
// leave the field or press Pay.

const VPA = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}@[A-Za-z][A-Za-z0-9.-]{1,63}$/;
const VPA_CHARACTERS = /^[A-Za-z0-9._@-]*$/;
const CONTROL = /[\x00-\x1f\x7f]/;
const MAX_YEARS_AHEAD = 25;
const HOLDER_NAME_MAX = 100;

const RUPAY_IIN_RANGES = [
  [508500, 508999],
  [606985, 607984],
  [608001, 608500],
  [652150, 653149],
  [810000, 829999],
];

export const NETWORKS = {
  visa: { label: "Visa", lengths: [13, 16, 19], cvv: 3, groups: [4, 4, 4, 4, 3] },
  mastercard: { label: "Mastercard", lengths: [16], cvv: 3, groups: [4, 4, 4, 4] },
  rupay: { label: "RuPay", lengths: [16], cvv: 3, groups: [4, 4, 4, 4] },
  amex: { label: "American Express", lengths: [15], cvv: 4, groups: [4, 6, 5] },
};

function ok(value) {
  return { value, error: null, definite: false };
}

function wrong(value, error, definite) {
  return { value, error, definite };
}

export function digitsOf(text) {
  return String(text).replace(/\D+/g, "");
}

export function luhnValid(digits) {
  let total = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let digit = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    total += digit;
  }
  return total % 10 === 0;
}

/** visa, mastercard, rupay or amex from the number's first digits; null when not (yet) known. */
export function cardNetwork(digits) {
  if (/^3[47]/.test(digits)) return "amex";
  if (digits.startsWith("4")) return "visa";
  if (digits.length >= 2) {
    const two = Number(digits.slice(0, 2));
    if (two >= 51 && two <= 55) return "mastercard";
  }
  if (digits.length >= 4) {
    const four = Number(digits.slice(0, 4));
    if (four >= 2221 && four <= 2720) return "mastercard";
  }
  if (/^35[36]/.test(digits)) return "rupay";
  if (digits.length >= 6) {
    const iin = Number(digits.slice(0, 6));
    if (RUPAY_IIN_RANGES.some(([low, high]) => iin >= low && iin <= high)) return "rupay";
  }
  return null;
}

/** The card number grouped as printed on the card (4-4-4-4, or 4-6-5 for American Express). */
export function formatCardNumber(digits) {
  const network = cardNetwork(digits);
  const groups = network ? NETWORKS[network].groups : [4, 4, 4, 4, 3];
  const parts = [];
  let at = 0;
  for (const size of groups) {
    if (at >= digits.length) break;
    parts.push(digits.slice(at, at + size));
    at += size;
  }
  return parts.join(" ");
}

export function maxCardDigits(digits) {
  const network = cardNetwork(digits);
  return network ? Math.max(...NETWORKS[network].lengths) : 19;
}

export function checkVpa(raw) {
  const value = raw.trim();
  if (value === "") return wrong(value, "Enter your UPI ID, like name@okbank", false);
  if (VPA.test(value)) return ok(value);
  const [, bank = ""] = value.split(/@(.*)/s);
  const impossible =
    !VPA_CHARACTERS.test(value) ||
    (value.match(/@/g) || []).length > 1 ||
    value.startsWith("@") ||
    /^[._-]/.test(value) ||
    (bank !== "" && !/^[A-Za-z]/.test(bank));
  return wrong(value, "Enter a valid UPI ID, like name@okbank", impossible);
}

export function checkCardNumber(raw) {
  const digits = digitsOf(raw);
  if (digits === "") return wrong(digits, "Enter your card number", false);
  const network = cardNetwork(digits);
  if (!network && digits.length >= 6) {
    return wrong(digits, "We accept Visa, Mastercard, RuPay and American Express cards", true);
  }
  const lengths = network ? NETWORKS[network].lengths : [16];
  const longest = Math.max(...lengths);
  if (!lengths.includes(digits.length)) {
    return wrong(digits, "This card number is incomplete", digits.length > longest);
  }
  if (!luhnValid(digits)) {
    // A 13-digit Visa number may be a 16-digit one still being typed; from 16 digits on, say so
    // (19-digit Visa cards are rare, and the error goes once a valid 19th digit is typed).
    return wrong(digits, "This card number is not valid", network !== "visa" || digits.length >= 16);
  }
  return ok(digits);
}

/** "MM/YY" from whatever was typed: digits only, a leading 0 for a single month digit above 1. */
export function formatExpiry(raw, deleting = false) {
  let digits = digitsOf(raw).slice(0, 4);
  if (digits.length === 1 && Number(digits) > 1) digits = `0${digits}`;
  if (digits.length < 2) return digits;
  if (digits.length === 2 && deleting) return digits;
  return `${digits.slice(0, 2)} / ${digits.slice(2)}`;
}

export function checkExpiry(raw, today = new Date()) {
  const digits = digitsOf(raw);
  if (digits === "") return wrong(null, "Enter the expiry date (MM / YY)", false);
  const month = Number(digits.slice(0, 2));
  if (digits.length >= 2 && (month < 1 || month > 12)) {
    return wrong(null, "Enter a valid month (01 to 12)", true);
  }
  if (digits.length < 4) return wrong(null, "This expiry date is incomplete", false);
  const year = 2000 + Number(digits.slice(2, 4));
  const thisYear = today.getFullYear();
  const thisMonth = today.getMonth() + 1;
  // A card is valid through the last day of its expiry month.
  if (year < thisYear || (year === thisYear && month < thisMonth)) {
    return wrong(null, "This card has expired", true);
  }
  if (year > thisYear + MAX_YEARS_AHEAD) return wrong(null, "Check the expiry year", true);
  return ok({ month, year });
}

export function checkCvv(raw, network) {
  const value = raw.trim();
  const expected = network ? NETWORKS[network].cvv : null;
  const label = expected === 4 ? "the 4-digit CVV (front of the card)" : "the 3-digit CVV";
  if (value === "") return wrong(value, `Enter ${expected ? label : "your card's security code"}`, false);
  if (!/^\d+$/.test(value)) return wrong(value, "The security code has digits only", true);
  if (expected === null) {
    return value.length === 3 || value.length === 4
      ? ok(value)
      : wrong(value, "Enter the 3 or 4-digit security code", value.length > 4);
  }
  if (value.length !== expected) return wrong(value, `Enter ${label}`, value.length > expected);
  return ok(value);
}

export function checkHolderName(raw) {
  const value = raw.trim();
  if (value === "") return wrong(value, "Enter the name on your card", false);
  if (CONTROL.test(value)) return wrong(value, "The name has characters we cannot accept", true);
  if (value.length > HOLDER_NAME_MAX) return wrong(value, `The name must be at most ${HOLDER_NAME_MAX} characters`, true);
  return ok(value);
}
