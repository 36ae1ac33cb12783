"""Socket authentication: an HS256 JWT from the handshake, checked once at connect.

The token comes from the Socket.IO handshake (`auth: {token}`) or, for clients that can set headers,
`Authorization: Bearer <token>`. Claims: `sub` (user id), `merchant_id`, `exp`, `aud` (must be
`notifier`: a token minted for anything else is refused), optional `iat`, optional `salon_id`, and
optional `invoice_id`. A token with `invoice_id` is a checkout's: it joins no merchant or salon room
and may subscribe to that one invoice only (the API mints these for payers' browsers, which must never
see the merchant's other payments). A refusal names its reason, so a frontend can tell an expired
session (refresh the token) from a broken integration.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from paystream.inputs import is_text, is_token
from paystream.notifier_tokens import ALGORITHM, AUDIENCE

REQUIRED_CLAIMS = ("sub", "merchant_id", "exp", "aud")
MAX_ID_LENGTH = 128
MAX_TOKEN_LENGTH = 4096


class AuthFailure(StrEnum):
    MISSING = "TOKEN_MISSING"
    MALFORMED = "TOKEN_MALFORMED"
    BAD_SIGNATURE = "TOKEN_SIGNATURE_INVALID"
    EXPIRED = "TOKEN_EXPIRED"
    WRONG_AUDIENCE = "TOKEN_AUDIENCE_INVALID"


class AuthError(Exception):
    """Why a handshake was refused; `message` is safe to show the client."""

    def __init__(self, failure: AuthFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on the other end of a socket, as the token says."""

    user_id: str
    merchant_id: str
    salon_id: str | None
    expires_at: float
    invoice_id: str | None = None
    """Set for a checkout's token: the one invoice it may watch."""


def token_from_handshake(auth: Any, environ: Mapping[str, Any]) -> str | None:
    """The token from `auth: {token}`, else from an `Authorization: Bearer` header."""
    if isinstance(auth, Mapping):
        token = auth.get("token")
        if isinstance(token, str) and token.strip():
            return token.strip()
    header = environ.get("HTTP_AUTHORIZATION")
    if isinstance(header, str):
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return None


def authenticate(token: str | None, secret: str) -> Principal:
    """Verify the token and return its principal, or raise `AuthError` saying what is wrong."""
    if token is None:
        raise AuthError(AuthFailure.MISSING, "authentication token missing")
    if not is_token(token, MAX_TOKEN_LENGTH):  # a JWT is printable ASCII: anything else is refused unread
        raise AuthError(AuthFailure.MALFORMED, "authentication token malformed: not a valid JWT")
    try:
        claims = decode_token(token, secret)
    except jwt.ExpiredSignatureError:
        raise AuthError(AuthFailure.EXPIRED, "authentication token expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError(AuthFailure.BAD_SIGNATURE, "authentication token signature invalid") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError(
            AuthFailure.BAD_SIGNATURE,
            f"authentication token signature invalid: algorithm must be {ALGORITHM}",
        ) from None
    except jwt.InvalidAudienceError:
        raise AuthError(
            AuthFailure.WRONG_AUDIENCE,
            f"authentication token is not for the notifier: aud must be {AUDIENCE}",
        ) from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(
            AuthFailure.MALFORMED, f"authentication token malformed: missing {exc.claim}"
        ) from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(AuthFailure.MALFORMED, f"authentication token malformed: {_reason(exc)}") from None
    return Principal(
        user_id=_identifier(claims, "sub"),
        merchant_id=_identifier(claims, "merchant_id"),
        salon_id=_identifier(claims, "salon_id") if claims.get("salon_id") is not None else None,
        expires_at=float(claims["exp"]),
        invoice_id=_invoice_claim(claims),
    )


def decode_token(token: str, secret: str) -> dict[str, Any]:
    """PyJWT's checks (signature, `exp`, `nbf`, required claims) for an HS256 token."""
    with warnings.catch_warnings():
        # The secret's length is policed once at start-up (see settings); a short test secret
        # must not turn every handshake into a warning.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    return claims


def _identifier(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    # Room names are `<kind>:<merchant>:<id>`: a colon in an id could alias another tenant's room.
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ID_LENGTH
        or ":" in value
        or not is_text(value)
    ):
        raise AuthError(AuthFailure.MALFORMED, f"authentication token malformed: invalid {name}")
    return value


def _invoice_claim(claims: Mapping[str, Any]) -> str | None:
    value = claims.get("invoice_id")
    if value is None:
        return None
    # Invoice ids may hold a colon (room names put them last), but must be text.
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH or not is_text(value):
        raise AuthError(AuthFailure.MALFORMED, "authentication token malformed: invalid invoice_id")
    return value


def _reason(exc: jwt.InvalidTokenError) -> str:
    if isinstance(exc, jwt.DecodeError):
        return "not a valid JWT"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "not valid yet"
    return "invalid claims"
