"""E-mail over SMTP, encrypted unless the server is on this very machine.

``starttls`` (default) refuses to send when the server does not offer STARTTLS
instead of quietly falling back to plain text; ``tls`` is implicit TLS (port 465);
``none`` is accepted only when set explicitly and the host is loopback (a local relay).
The password is held out of ``repr`` and never appears in a log line or error.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from renewal.clients import is_loopback_host, is_timeout
from renewal.notify.channel import NotificationError, NotifyConfigError
from renewal.notify.notifications import Notification

SECURITY_MODES = ("starttls", "tls", "none")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
# Per step (connect, greeting, EHLO, STARTTLS handshake, AUTH, each command of the send): a working
# submission server answers each in well under a second, at most a few seconds for the end of DATA.
SMTP_TIMEOUT_DEFAULT = 10.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    sender: str
    port: int | None = None  # None: the usual port for the security mode
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: str = "starttls"
    timeout: float = SMTP_TIMEOUT_DEFAULT  # the socket's timeout: every step above, the TLS handshakes included
    ca_bundle: str | None = None  # trust a private CA for the server certificate

    def __post_init__(self) -> None:
        if not self.host:
            raise NotifyConfigError("SMTP host is empty: set CERTLC_SMTP_HOST")
        if not self.sender:
            raise NotifyConfigError("SMTP sender is empty: set CERTLC_SMTP_SENDER to the From address")
        if self.security not in SECURITY_MODES:
            raise NotifyConfigError(
                f"SMTP security {self.security!r} is not one of {', '.join(SECURITY_MODES)} (CERTLC_SMTP_SECURITY)"
            )
        if self.security == "none" and not is_loopback_host(self.host):
            raise NotifyConfigError(
                f"SMTP security 'none' is only allowed for a loopback relay, not {self.host}: "
                "use 'starttls' or 'tls' so mail and credentials are encrypted"
            )
        if bool(self.username) != bool(self.password):
            raise NotifyConfigError(
                "SMTP authentication needs both a user name and a password "
                "(CERTLC_SMTP_USERNAME and CERTLC_SMTP_PASSWORD), or neither"
            )

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]


class SmtpChannel:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    @property
    def name(self) -> str:
        return f"smtp:{self.settings.host}:{self.settings.effective_port}"

    def build_message(self, notification: Notification, recipients: Sequence[str]) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = " ".join(notification.subject.split())  # one header line, whatever the name holds
        message["From"] = self.settings.sender
        message["To"] = ", ".join(recipients)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.settings.sender.rpartition("@")[2] or None)
        message.set_content(notification.text_body())
        message.add_alternative(notification.html_body(), subtype="html")
        return message

    def send(self, notification: Notification, recipients: Sequence[str]) -> None:
        if not recipients:
            raise NotificationError(
                f"no e-mail recipients for {notification.subject!r}: set the certificate's Recipient tag "
                "or CERTLC_NOTIFY_DEFAULT_RECIPIENTS"
            )
        message = self.build_message(notification, recipients)
        where = f"SMTP server {self.settings.host}:{self.settings.effective_port}"
        try:
            with self._connect() as client:
                self._secure(client, where)
                self._login(client, where)
                refused = client.send_message(message, to_addrs=list(recipients))
        except NotificationError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            names = ", ".join(sorted(exc.recipients))
            raise NotificationError(f"{where} refused every recipient ({names})") from None
        except smtplib.SMTPResponseException as exc:
            raise NotificationError(f"{where} answered {exc.smtp_code}: {_text(exc.smtp_error)}") from None
        except ssl.SSLError as exc:
            raise NotificationError(
                f"TLS with {where} failed ({exc.reason or exc}); if it uses a private CA, "
                "point CERTLC_SMTP_CA_BUNDLE at that CA's PEM file"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            if is_timeout(exc):  # smtplib reports a reply that never came as SMTPServerDisconnected
                raise NotificationError(
                    f"{where} did not answer within {self.settings.timeout:g} s (CERTLC_SMTP_TIMEOUT)"
                ) from None
            raise NotificationError(f"{where} could not be reached or dropped the connection: {exc}") from None
        if refused:
            raise NotificationError(
                f"{where} delivered to {len(recipients) - len(refused)} recipient(s) but refused "
                f"{', '.join(sorted(refused))}"
            )

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_bundle)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(s.host, s.effective_port, timeout=s.timeout, context=self._tls_context())
        return smtplib.SMTP(s.host, s.effective_port, timeout=s.timeout)

    def _secure(self, client: smtplib.SMTP, where: str) -> None:
        client.ehlo()
        if self.settings.security != "starttls":
            return
        if not client.has_extn("starttls"):
            raise NotificationError(
                f"{where} does not offer STARTTLS; refusing to send mail in plain text. Enable STARTTLS "
                "on the server, or set CERTLC_SMTP_SECURITY=tls if it speaks implicit TLS (port 465)"
            )
        client.starttls(context=self._tls_context())
        client.ehlo()

    def _login(self, client: smtplib.SMTP, where: str) -> None:
        s = self.settings
        if not s.username or not s.password:
            return
        try:
            client.login(s.username, s.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise NotificationError(
                f"{where} rejected the login for user {s.username!r} ({exc.smtp_code}): check "
                "CERTLC_SMTP_USERNAME and the password setting"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise NotificationError(
                f"{where} does not offer AUTH on this connection; check the port and security mode"
            ) from None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
