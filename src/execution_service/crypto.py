"""Credential encryption: AES-256-GCM under a key ring with key ids, bound to the row's owner.

A token is `v1:<key id>:<base64 nonce||ciphertext>`. The owner ("u:<user_id>" / "a:<admin_id>") is
the associated data, so a ciphertext copied onto another owner's row fails to decrypt instead of
handing that owner the credentials. New rows use the ring's first key; `rotate-keys` re-encrypts
old rows. A failure raises `CredentialsError` — never empty credentials.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from execution_service.settings import Settings

log = logging.getLogger(__name__)

_VERSION = "v1"


class CredentialsError(Exception):
    """Credentials could not be decrypted (unknown key id, wrong key, tampered or moved row)."""


class KeyRingError(Exception):
    """The key ring is missing or malformed."""


def owner_aad(user_id: int | None, admin_id: int | None) -> str:
    if user_id is not None:
        return f"u:{user_id}"
    if admin_id is not None:
        return f"a:{admin_id}"
    return "platform"


@dataclass(frozen=True)
class EncryptedToken:
    key_id: str
    token: str


class KeyRing:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyRingError("the key ring is empty")
        for kid, key in keys:
            if len(key) != 32:
                raise KeyRingError(f"key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
            if not kid or ":" in kid or "," in kid:
                raise KeyRingError(f"key id {kid!r} must be non-empty without ':' or ','")
        self._keys = dict(keys)
        self.primary_id = keys[0][0]

    def __repr__(self) -> str:  # never show key material
        return f"KeyRing(primary={self.primary_id!r}, ids={list(self._keys)!r})"

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """`kid:base64key,kid2:base64key` — the first is the primary."""
        keys: list[tuple[str, bytes]] = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kid, sep, b64 = part.partition(":")
            if not sep:
                raise KeyRingError("each key must be written as <key id>:<base64 key>")
            try:
                keys.append((kid, base64.urlsafe_b64decode(b64.encode())))
            except ValueError as exc:
                raise KeyRingError(f"key {kid!r} is not valid base64") from exc
        return cls(keys)

    def format(self) -> str:
        return ",".join(
            f"{kid}:{base64.urlsafe_b64encode(key).decode()}" for kid, key in self._keys.items()
        )

    def with_new_primary(self) -> KeyRing:
        kid = f"k{secrets.token_hex(4)}"
        return KeyRing([(kid, AESGCM.generate_key(bit_length=256)), *self._keys.items()])

    def encrypt(self, credentials: dict[str, str], owner: str) -> EncryptedToken:
        nonce = os.urandom(12)
        plaintext = json.dumps(credentials, separators=(",", ":")).encode()
        ciphertext = AESGCM(self._keys[self.primary_id]).encrypt(nonce, plaintext, owner.encode())
        body = base64.urlsafe_b64encode(nonce + ciphertext).decode()
        return EncryptedToken(self.primary_id, f"{_VERSION}:{self.primary_id}:{body}")

    def decrypt(self, token: str, owner: str) -> dict[str, str]:
        try:
            version, kid, body = token.split(":", 2)
        except ValueError:
            raise CredentialsError("credentials are not in a known format") from None
        if version != _VERSION:
            raise CredentialsError(f"credentials format {version!r} is not supported")
        key = self._keys.get(kid)
        if key is None:
            raise CredentialsError(f"credentials were encrypted with key {kid!r}, not in the ring")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            plaintext = AESGCM(key).decrypt(raw[:12], raw[12:], owner.encode())
        except (InvalidTag, ValueError):
            raise CredentialsError(f"credentials do not decrypt under key {kid!r}") from None
        data = json.loads(plaintext)
        if not isinstance(data, dict):
            raise CredentialsError("credentials decrypted to something other than an object")
        return {str(k): str(v) for k, v in data.items()}


def load_key_ring(settings: Settings) -> KeyRing:
    """From EXEC_ENCRYPTION_KEYS, else the key file; development creates the file (0600)."""
    if settings.encryption_keys is not None:
        return KeyRing.parse(settings.encryption_keys.get_secret_value())
    path = Path(settings.encryption_key_file)
    if path.exists():
        return KeyRing.parse(path.read_text().strip())
    if settings.env == "production":
        raise KeyRingError(
            "EXEC_ENV=production needs an encryption key ring: set EXEC_ENCRYPTION_KEYS "
            "or provide EXEC_ENCRYPTION_KEY_FILE"
        )
    ring = KeyRing([("k1", AESGCM.generate_key(bit_length=256))])
    write_key_file(path, ring)
    log.warning(
        "generated a new credential encryption key in %s (mode 0600); keep it: credentials "
        "stored under it cannot be read without it",
        path,
    )
    return ring


def write_key_file(path: Path, ring: KeyRing) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.format() + "\n")
    os.replace(tmp, path)
