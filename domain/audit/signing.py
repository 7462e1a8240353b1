"""Ed25519 signatures of a bundle's manifest (the `cryptography` package).

The private key is a PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes it; the public
key is shown as a SubjectPublicKeyInfo PEM, so that anyone can check a bundle without
afteraction: `openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in manifest.json
-sigfile manifest.sig`. The signature file holds the 64 raw signature bytes.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENERATE_HINT = "make one with `openssl genpkey -algorithm ed25519 -out audit-signing.pem`"


class SigningKeyError(Exception):
    """A key that is not an Ed25519 key in the expected form; the message says which."""


def private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        # Never the key's text: it is a secret.
        raise SigningKeyError(
            f"the audit signing key is not an unencrypted PEM private key ({type(error).__name__})"
            f"; {GENERATE_HINT}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"the audit signing key is not an Ed25519 key; {GENERATE_HINT}")
    return key


def public_key(text: bytes) -> Ed25519PublicKey:
    """A public key as `audit public-key` prints it (PEM), or as a manifest names it (the 32
    raw bytes in base64)."""
    try:
        if text.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
            if not isinstance(key, Ed25519PublicKey):
                raise SigningKeyError("the public key is not an Ed25519 key")
            return key
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error):
        raise SigningKeyError(
            "not an Ed25519 public key: give the PEM `afteraction audit public-key` prints"
        ) from None


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_raw(key: Ed25519PublicKey) -> str:
    """The 32 raw bytes of the key, in base64: how a manifest names its signer."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def signature_problem(key: Ed25519PublicKey, data: bytes, signature: bytes) -> str | None:
    """Why `signature` is not `key`'s signature of `data`, or None when it is."""
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return (
            "manifest.sig: the signature does not match manifest.json and the key "
            f"{public_raw(key)} (one of them changed after export, or another key signed it)"
        )
    return None
