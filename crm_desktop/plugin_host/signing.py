"""Ed25519 keys and detached bundle signatures (DESIGN.md, Bundles).

Files
-----
``PREFIX.key``
    The private key, PEM (PKCS#8, unencrypted), written with file mode 0600.
    Keep it off the reps' laptops.
``PREFIX.pub``
    One line, ``ed25519:<base64 of the 32 raw public key bytes>``. That line is
    what goes verbatim into a policy's ``trustedKeys``.
``BUNDLE.sig``
    A small JSON document beside the bundle::

        {
          "format": "crm-desktop-signature/1",
          "algorithm": "ed25519",
          "keyId": "3f2a9c0d1e4b5a67",
          "publicKey": "ed25519:...",
          "plugin": "sample-plugin",
          "version": "1.0.0",
          "sha256": "<hex sha256 of the whole .crmplugin file>",
          "signature": "<base64 Ed25519 signature>"
        }

    The signature covers :func:`signed_message` — a fixed domain prefix, the
    plugin name, the version and the bundle's sha256, one per line — so a
    signature for one plugin or version can never be replayed for another, and
    the bundle's bytes are bound by their hash. ``keyId`` is the first 16 hex
    digits of the sha256 of the raw public key; it is informative only (what is
    trusted is the full ``publicKey`` line).

Verification needs only the bundle's bytes (hashed as a stream) and the
``.sig`` file, so it happens before the zip is opened.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crm_desktop.errors import CrmError
from crm_desktop.plugin_host.json_files import read_bounded_json

log = logging.getLogger(__name__)

SIGNATURE_FORMAT = "crm-desktop-signature/1"
PUBLIC_KEY_PREFIX = "ed25519:"
#: Domain separation: a signature made by this key for anything else never verifies here.
MESSAGE_PREFIX = b"crm-desktop bundle signature v1\n"
#: A .sig file is tiny; refuse to parse anything bigger.
MAX_SIGNATURE_FILE_BYTES = 16 * 1024
_HASH_CHUNK = 1024 * 1024


class SignatureError(CrmError):
    """A key or signature is missing, malformed, untrusted or does not verify."""


@dataclass(frozen=True)
class SignatureInfo:
    """What a verified (or at least well-formed) ``.sig`` file says."""

    key_id: str
    public_key: str
    plugin: str
    version: str
    sha256: str
    trusted: bool = False


def sig_path_for(bundle_path: str | os.PathLike[str]) -> Path:
    """The detached signature's path: ``BUNDLE.sig``."""
    bundle_path = Path(bundle_path)
    return bundle_path.with_name(bundle_path.name + ".sig")


def key_id(public_key_text: str) -> str:
    """Short id of a public key line (16 hex digits), for display."""
    raw = _decode_public_key(public_key_text, "public key")
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(key: Ed25519PublicKey) -> str:
    """The one-line text form of a public key (``ed25519:<base64>``)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def normalize_public_key(text: str, where: str = "public key") -> str:
    """``text`` as a canonical key line; raises :class:`SignatureError` if it is not one."""
    raw = _decode_public_key(text, where)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def _decode_public_key(text: str, where: str) -> bytes:
    if not isinstance(text, str):
        raise SignatureError(f"{where}: expected a line 'ed25519:<base64>', got {type(text).__name__}")
    text = text.strip()
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise SignatureError(f"{where}: {text[:40]!r} is not a public key: it must start with 'ed25519:'")
    try:
        raw = base64.b64decode(text[len(PUBLIC_KEY_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{where}: {text[:40]!r} is not valid base64") from None
    if len(raw) != 32:
        raise SignatureError(f"{where}: an Ed25519 public key has 32 bytes, this one has {len(raw)}")
    return raw


def generate_keypair(prefix: str | os.PathLike[str],
                     protected: Iterable[os.PathLike[str] | str] = ()) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (mode 0600) and ``PREFIX.pub``; refuses to overwrite either.

    Returns the two paths.
    """
    from crm_desktop.files import atomic_output, check_output

    prefix = Path(prefix)
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    for path in (key_path, pub_path):
        if path.exists():
            raise SignatureError(f"{path} exists already; choose another --out prefix (keys are never overwritten)")
        check_output(path, protected=protected)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # mode 0600 at creation: the key is never readable by others, not even briefly; both files
    # are written in full before either gets its name, and the key goes if the public half fails.
    with atomic_output(key_path, protected=protected, binary=True, mode=0o600) as fh:
        fh.write(pem)
    try:
        with atomic_output(pub_path, protected=protected) as fh:
            fh.write(public_key_text(private.public_key()) + "\n")
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise
    log.info("generated key %s (%s)", key_path, key_id(public_key_text(private.public_key())))
    return key_path, pub_path


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read a ``PREFIX.key`` file; raises :class:`SignatureError` naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"{path}: no such key file") from None
    except OSError as exc:
        raise SignatureError(f"{path}: cannot read the key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SignatureError(f"{path}: not an unencrypted PEM private key (made by 'crm-desktop keys generate')") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: is not an Ed25519 key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> str:
    """Read a ``PREFIX.pub`` file and return its canonical key line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SignatureError(f"{path}: cannot read the public key: {exc}") from None
    return normalize_public_key(text, str(path))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read as a stream."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def signed_message(plugin: str, version: str, sha256: str) -> bytes:
    """The exact bytes an Ed25519 signature covers."""
    for label, value in (("plugin", plugin), ("version", version), ("sha256", sha256)):
        if not isinstance(value, str) or not value or "\n" in value:
            raise SignatureError(f"signature {label}: {value!r} must be a non-empty one-line string")
    return MESSAGE_PREFIX + f"{plugin}\n{version}\n{sha256.lower()}\n".encode("utf-8")


def sign_bundle(
    bundle_path: str | os.PathLike[str],
    private_key: Ed25519PrivateKey,
    plugin: str,
    version: str,
    out_path: str | os.PathLike[str] | None = None,
    protected: Iterable[os.PathLike[str] | str] = (),
) -> Path:
    """Write the detached signature for a bundle whose plugin name and version are given.

    The caller reads ``plugin`` and ``version`` from the bundle (see
    :func:`crm_desktop.plugin_host.bundle.read_bundle_identity`). Returns the
    ``.sig`` path (``BUNDLE.sig`` unless ``out_path`` says otherwise).
    """
    bundle_path = Path(bundle_path)
    digest = file_sha256(bundle_path)
    signature = private_key.sign(signed_message(plugin, version, digest))
    public = public_key_text(private_key.public_key())
    doc = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "ed25519",
        "keyId": key_id(public),
        "publicKey": public,
        "plugin": plugin,
        "version": version,
        "sha256": digest,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    from crm_desktop.files import atomic_output

    target = Path(out_path) if out_path else sig_path_for(bundle_path)
    # a half-written .sig never sits beside the bundle; re-signing replaces the old signature
    with atomic_output(target, force=True, protected=protected) as fh:
        fh.write(json.dumps(doc, indent=2) + "\n")
    return target


def read_signature(sig_path: str | os.PathLike[str]) -> tuple[SignatureInfo, bytes]:
    """Parse a ``.sig`` file (no verification); returns the info and the raw signature."""
    sig_path = Path(sig_path)
    doc = read_bounded_json(sig_path, MAX_SIGNATURE_FILE_BYTES, SignatureError, noun="signature",
                            invalid_json="not a signature file (invalid JSON: {exc})")
    if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT:
        raise SignatureError(f"{sig_path}: not a signature file (format must be {SIGNATURE_FORMAT!r})")
    if doc.get("algorithm") != "ed25519":
        raise SignatureError(f"{sig_path}: algorithm {doc.get('algorithm')!r} is not supported; only 'ed25519'")
    for field in ("publicKey", "plugin", "version", "sha256", "signature"):
        if not isinstance(doc.get(field), str) or not doc[field]:
            raise SignatureError(f"{sig_path}: field {field!r} is missing or not a string")
    public = normalize_public_key(doc["publicKey"], f"{sig_path}: publicKey")
    try:
        raw_sig = base64.b64decode(doc["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{sig_path}: field 'signature' is not valid base64") from None
    info = SignatureInfo(
        key_id=key_id(public),
        public_key=public,
        plugin=doc["plugin"],
        version=doc["version"],
        sha256=doc["sha256"].lower(),
    )
    return info, raw_sig


def verify_bundle_signature(
    bundle_path: str | os.PathLike[str],
    sig_path: str | os.PathLike[str] | None = None,
    trusted_keys: Iterable[str] = (),
    *,
    require_trusted: bool = True,
    bundle_sha256: str | None = None,
) -> SignatureInfo:
    """Check a bundle against its detached signature, without opening the zip.

    Raises :class:`SignatureError` when the bundle's hash differs from the
    signed one, or the Ed25519 signature does not verify (always), or the key
    is not in ``trusted_keys`` (when ``require_trusted``). Returns the info,
    with ``trusted`` telling whether the key is one of ``trusted_keys``.
    """
    bundle_path = Path(bundle_path)
    sig_path = Path(sig_path) if sig_path else sig_path_for(bundle_path)
    info, raw_sig = read_signature(sig_path)
    digest = bundle_sha256 or file_sha256(bundle_path)
    if digest != info.sha256:
        raise SignatureError(
            f"{bundle_path.name}: the bundle's sha256 {digest[:16]}… differs from the signed {info.sha256[:16]}…: "
            "the bundle was changed after signing"
        )
    public = Ed25519PublicKey.from_public_bytes(_decode_public_key(info.public_key, "publicKey"))
    try:
        public.verify(raw_sig, signed_message(info.plugin, info.version, info.sha256))
    except InvalidSignature:
        raise SignatureError(
            f"{bundle_path.name}: the signature in {sig_path.name} does not verify with key {info.key_id} "
            "(the signature file was altered)"
        ) from None
    trusted_set = {normalize_public_key(k, "trusted key") for k in trusted_keys}
    trusted = info.public_key in trusted_set
    if require_trusted and not trusted:
        raise SignatureError(
            f"{bundle_path.name}: signed by key {info.key_id}, which is not one of the policy's trusted keys"
        )
    return SignatureInfo(**{**info.__dict__, "trusted": trusted})


def signature_verifies(public_key: str, plugin: str, version: str, sha256: str, signature_b64: str) -> bool:
    """True if ``signature_b64`` is ``public_key``'s Ed25519 signature of that plugin, version and bundle hash.

    Used at load time on the signature an install kept (see ``trust.py``); any
    malformed input is simply "does not verify".
    """
    try:
        raw_key = _decode_public_key(public_key, "publicKey")
        raw_sig = base64.b64decode(signature_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_sig, signed_message(plugin, version, sha256))
    except (SignatureError, InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
    return True
