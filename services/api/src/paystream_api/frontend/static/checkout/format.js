// Amounts as payers read them: integer minor units formatted for the order's currency, with that
// currency's own number of decimals (2 for INR, 0 for JPY, 3 for KWD), as Intl knows them.

const formatters = new Map();

function formatter(currency) {
  if (!formatters.has(currency)) {
    formatters.set(currency, new Intl.NumberFormat(undefined, { style: "currency", currency }));
  }
  return formatters.get(currency);
}

/** `minor` units of `currency` (ISO 4217), e.g. 50000 INR -> "₹500.00". */
export function formatAmount(minor, currency) {
  try {
    const format = formatter(currency);
    const decimals = format.resolvedOptions().maximumFractionDigits;
    return format.format(minor / 10 ** decimals);
  } catch (_) {
    return `${currency} ${minor}`;
  }
}
