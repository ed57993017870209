"""TLS, mutual TLS and API keys for the connection to Temporal, from settings.

A secured Temporal (a self-hosted cluster behind TLS, Temporal Cloud) is reached with
the SDK's own ``TLSConfig`` and ``api_key``. What the settings name is read and checked
here, before any connection is tried, so a missing file or a key that does not belong
to its certificate stops a process at start with the setting's name, not with the
SDK's transport error a minute later. :func:`refusal` then tells a server that refused
us (untrusted certificate, client certificate or API key refused) from one that is not
up yet: only the latter is worth waiting for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from engine.platform.settings import Settings

CA_FILE = "AFTERCARE_TEMPORAL_TLS_CA_FILE"
SERVER_NAME = "AFTERCARE_TEMPORAL_TLS_SERVER_NAME"
CERT_FILE = "AFTERCARE_TEMPORAL_TLS_CERT_FILE"
KEY_FILE = "AFTERCARE_TEMPORAL_TLS_KEY_FILE"
CERT_TEXT = "AFTERCARE_TEMPORAL_TLS_CERT"
KEY_TEXT = "AFTERCARE_TEMPORAL_TLS_KEY"
API_KEY = "AFTERCARE_TEMPORAL_API_KEY"
TLS_SWITCH = "AFTERCARE_TEMPORAL_TLS"


class TemporalConfigError(ConnectionError):
    """The settings for Temporal cannot work: waiting would not help, the named
    setting (or the server's) must change. A ConnectionError, so callers that already
    treat an unreachable Temporal (the HTTP app's lazy connection) keep doing so."""


@dataclass(frozen=True)
class TemporalAccess:
    """What ``Client.connect`` takes for TLS and authentication, and where it came from."""

    tls: TLSConfig | bool
    api_key: str | None
    # The settings that provided the client certificate and the roots (for messages).
    client_certificate_from: str | None
    roots_from: str | None

    @property
    def uses_tls(self) -> bool:
        return self.tls is not False


def uses_tls(settings: Settings) -> bool:
    """Whether the connection to Temporal is TLS: as set, else whenever anything
    that only makes sense over TLS is given."""
    if settings.temporal_tls is not None:
        return settings.temporal_tls
    return any(
        value is not None
        for value in (
            settings.temporal_tls_ca_file,
            settings.temporal_tls_server_name,
            settings.temporal_tls_cert_file,
            settings.temporal_tls_cert,
            settings.temporal_api_key,
        )
    )


def temporal_access(settings: Settings) -> TemporalAccess:
    """Read and check every TLS file and PEM text the settings name.

    Raises TemporalConfigError naming the setting at fault."""
    api_key = _api_key(settings.temporal_api_key)
    if not uses_tls(settings):
        return TemporalAccess(
            tls=False, api_key=api_key, client_certificate_from=None, roots_from=None
        )
    roots = None
    if settings.temporal_tls_ca_file is not None:
        roots = _from_file(CA_FILE, settings.temporal_tls_ca_file)
        _certificates(CA_FILE, roots, settings.temporal_tls_ca_file)
    chain, key, chain_from = _client_certificate(settings)
    if roots is None and chain is None and settings.temporal_tls_server_name is None:
        # The SDK's plain TLS: the system's roots, the address's host name.
        return TemporalAccess(
            tls=True, api_key=api_key, client_certificate_from=None, roots_from=None
        )
    return TemporalAccess(
        tls=TLSConfig(
            server_root_ca_cert=roots,
            # Sets the name sent (SNI) and verified: a proxy that routes by name sees
            # the name the certificate carries, not the IP address dialled.
            domain=settings.temporal_tls_server_name,
            client_cert=chain,
            client_private_key=key,
        ),
        api_key=api_key,
        client_certificate_from=chain_from,
        roots_from=CA_FILE if roots is not None else None,
    )


def _api_key(secret: SecretStr | None) -> str | None:
    # Blank counts as unset, as for every secret setting.
    key = secret.get_secret_value().strip() if secret is not None else ""
    return key or None


def _from_file(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        reason = (err.strerror or type(err).__name__).lower()
        raise TemporalConfigError(f"{setting}: cannot read {path}: {reason}") from None


def _from_text(secret: SecretStr) -> bytes:
    text = secret.get_secret_value().strip()
    # A PEM pasted into a one-line environment variable (an env file, a CI secret)
    # often arrives with its line breaks written as \n.
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    return (text + "\n").encode()


def _certificates(setting: str, pem: bytes, path: Path | None = None) -> list[x509.Certificate]:
    where = f"{path} holds" if path is not None else "holds"
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TemporalConfigError(f"{setting}: {where} no PEM certificate") from None


def _client_certificate(settings: Settings) -> tuple[bytes | None, bytes | None, str | None]:
    """``(certificate chain, private key, setting of the chain)``, both checked, or Nones.

    Settings already refuses one half without the other."""
    if settings.temporal_tls_cert_file is not None:
        chain_from, chain_path = CERT_FILE, settings.temporal_tls_cert_file
        chain = _from_file(CERT_FILE, chain_path)
    elif settings.temporal_tls_cert is not None:
        chain_from, chain_path = CERT_TEXT, None
        chain = _from_text(settings.temporal_tls_cert)
    else:
        return None, None, None
    if settings.temporal_tls_key_file is not None:
        key_from, key_path = KEY_FILE, settings.temporal_tls_key_file
        key = _from_file(KEY_FILE, key_path)
    elif settings.temporal_tls_key is not None:
        key_from, key_path = KEY_TEXT, None
        key = _from_text(settings.temporal_tls_key)
    else:  # pragma: no cover - Settings refuses a certificate without its key
        raise TemporalConfigError(f"{chain_from} is set without its key")

    leaf = _certificates(chain_from, chain, chain_path)[0]
    where = f"{key_path} holds" if key_path is not None else "holds"
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except TypeError:  # a password-protected key, which the SDK cannot use
        raise TemporalConfigError(
            f"{key_from}: {where} an encrypted private key; give it unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TemporalConfigError(f"{key_from}: {where} no PEM private key") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ) != leaf.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise TemporalConfigError(
            f"{key_from}: the private key does not belong to the certificate in {chain_from}"
        )
    # The server would refuse it with a bare handshake failure; the date says more.
    expiry = leaf.not_valid_after_utc
    if expiry < datetime.now(UTC):
        raise TemporalConfigError(
            f"{chain_from}: the client certificate expired on {expiry:%Y-%m-%d %H:%M} UTC"
        )
    return chain, key, chain_from


# The SDK reports a failed connection as a RuntimeError whose text is its transport's
# (tonic, rustls, hyper) debug output: no structured cause reaches Python. These are
# the tokens of a refusal. tests/engine/platform/temporal/test_tls_connection.py drives
# each through a real TLS proxy, so an SDK that words them differently fails there.
_NAMES_PRESENTED = re.compile(r'(?:DnsName|IpAddress)\(\\*"?([^"\\)]+)')
_CLIENT_CERT_ALERTS = (
    "badcertificate",
    "unknownca",
    "certificateunknown",
    "certificateexpired",
    "certificaterevoked",
    "unsupportedcertificate",
    "accessdenied",
    "decrypterror",
)


def refusal(err: BaseException, settings: Settings, access: TemporalAccess) -> str | None:
    """Why the server refused this client, naming the setting to change; None when the
    failure may pass (nothing listening yet, the connection dropped, unavailable)."""
    text = str(err)
    lowered = text.lower().replace(" ", "")
    status = err.status if isinstance(err, RPCError) else None

    if "unknownissuer" in lowered:
        if access.roots_from is not None:
            return f"the server's certificate is not trusted by {access.roots_from}"
        return (
            "the server's certificate is not trusted by the system's root certificates: "
            f"set {CA_FILE} to the CA that issued it"
        )
    if "notvalidforname" in lowered:
        # Only what the certificate carries, not the name that was expected of it.
        offered = text.partition("presented:")[2]
        presented = ", ".join(dict.fromkeys(_NAMES_PRESENTED.findall(offered)))
        carried = f" (it names {presented})" if presented else ""
        if settings.temporal_tls_server_name is not None:
            return (
                f"the server's certificate is not valid for {SERVER_NAME} "
                f"({settings.temporal_tls_server_name}){carried}"
            )
        host = settings.temporal_address.rsplit(":", 1)[0]
        return (
            f"the server's certificate is not valid for {host}{carried}: "
            f"set {SERVER_NAME} to a name it carries"
        )
    if "invalidcertificate(expired" in lowered or "invalidcertificate(notvalidyet" in lowered:
        return (
            "the server's certificate is outside its validity period "
            "(expired, or this machine's clock is wrong)"
        )
    if "invalidcertificate(" in lowered:
        return f"the server's certificate was rejected: {_brief(text)}"
    if "invalidcontenttype" in lowered or "corruptmessage" in lowered:
        return f"it does not answer TLS at this address ({TLS_SWITCH} is on)"
    if "privatekeyparseerror" in lowered:
        return f"the client key ({KEY_FILE} or {KEY_TEXT}) cannot be used by the SDK"
    if "alertreceived(certificaterequired" in lowered:
        return _client_certificate_refused(access, "")
    if any(f"alertreceived({alert}" in lowered for alert in _CLIENT_CERT_ALERTS):
        return _client_certificate_refused(access, "")
    if "status:400badrequest" in lowered and access.uses_tls:
        # A TLS-terminating proxy (nginx) finishes the handshake without a client
        # certificate it trusts and answers each request 400.
        return _client_certificate_refused(
            access, " (HTTP 400, a TLS proxy's answer to a client certificate it does not trust)"
        )
    if (
        status == RPCStatusCode.UNAUTHENTICATED
        or "code:unauthenticated" in lowered
        or "status:401" in lowered
    ):
        if access.api_key is not None:
            return f"the API key in {API_KEY} was refused"
        return f"it asks for credentials: set {API_KEY} (or a client certificate, {CERT_FILE})"
    if (
        status == RPCStatusCode.PERMISSION_DENIED
        or "code:permissiondenied" in lowered
        or "status:403" in lowered
    ):
        return (
            "the credentials given are not allowed in namespace "
            f"{settings.temporal_namespace}: check the access of {API_KEY} or of the "
            "client certificate"
        )
    return None


def _client_certificate_refused(access: TemporalAccess, detail: str) -> str:
    if access.client_certificate_from is None:
        return (
            f"it demands a client certificate (mutual TLS){detail}: set {CERT_FILE} and "
            f"{KEY_FILE} (or {CERT_TEXT} and {KEY_TEXT})"
        )
    return f"the client certificate in {access.client_certificate_from} was refused{detail}"


def unreachable_hint(err: BaseException, access: TemporalAccess) -> str:
    """A hint for a failure that looked passing but lasted: a plaintext client at a
    TLS port sees only the connection closing, like a server going down."""
    lowered = str(err).lower()
    if not access.uses_tls and ("connection closed" in lowered or "connectionreset" in lowered):
        return f" (if this address expects TLS, set {TLS_SWITCH}=true)"
    return ""


def _brief(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
