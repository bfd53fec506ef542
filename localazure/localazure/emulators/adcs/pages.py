"""The HTML of the AD CS web-enrollment pages, with the wording clients (certsrv) parse.

Shapes follow the ``/certsrv`` pages of Windows Server: the issued page links
``certnew.cer?ReqID=N&amp;Enc=b64``, the pending page says "Certificate Pending" and
"Your Request Id is N.", the denied page quotes "The disposition message is "...""
and a failed certificate fetch shows "Disposition message:" then two tabs and the message.
"""

from __future__ import annotations

from html import escape

# Disposition messages as AD CS words them.
UNDER_SUBMISSION = "Taken Under Submission"
UNSUPPORTED_TEMPLATE = (
    "Denied by Policy Module  0x80094800, The requested certificate template is not supported by this CA."
)
NO_TEMPLATE = "Denied by Policy Module  0x80094801, The request contains no certificate template information."
ADMIN_DENIED = (
    "Denied by Policy Module  0x80094014, The request was denied by a certificate manager or CA administrator."
)


def _page(title: str, body: str) -> str:
    return (
        '<HTML>\r\n<Head>\r\n\t<Meta HTTP-Equiv="Content-Type" Content="text/html; charset=UTF-8">\r\n'
        "\t<Title>Microsoft Active Directory Certificate Services</Title>\r\n</Head>\r\n<Body>\r\n"
        f"<P ID=locPageTitle> <B> {title} </B>\r\n{body}\r\n</Body>\r\n</HTML>\r\n"
    )


def home() -> str:
    return _page("Welcome", "<P>Use this Web site to request a certificate.</P>")


def ca_certificates(renewals: int) -> str:
    """certcarc.asp: certsrv reads ``nRenewals`` to ask for the newest CA certificate."""
    return _page(
        "Download a CA Certificate, Certificate Chain, or CRL",
        f'<Script Language="JavaScript">\r\n\tvar nRenewals={renewals};\r\n</Script>',
    )


def issued(request_id: int) -> str:
    link = f"certnew.cer?ReqID={request_id}&amp;Enc=b64"
    return _page("Certificate Issued", f'<P>The certificate you requested was issued to you.</P>\r\n<A Href="{link}">')


def pending(request_id: int) -> str:
    """certfnsh.asp for a request the CA left under submission (CA certificate manager approval)."""
    return _page(
        "Certificate Pending",
        "<P ID=locInfoNewReq> Your certificate request has been received. However, you must wait for an\r\n"
        "administrator to issue the certificate you requested. </P>\r\n"
        f"<P ID=locReqID> Your Request Id is {request_id}. </P>\r\n"
        "<P ID=locInstructions> Please return to this web site in a day or two to retrieve your certificate.</P>\r\n"
        "<P ID=locTimeoutWarning><Font Size=-1><B>Note:</B> You must return with <B>this</B> web browser within 10 "
        "days to retrieve your\r\ncertificate</Font></P>",
    )


def denied(request_id: int, message: str) -> str:
    return _page(
        "Certificate Request Denied",
        "<P ID=locDenied> Your certificate request was denied. </P>\r\n"
        f'<P>Your Request Id is {request_id}. The disposition message is "{escape(message, quote=False)}".</P>\r\n'
        "<P ID=locContactAdmin>Contact your administrator for further information.</P>",
    )


def fetch_error(message: str) -> str:
    """certrser.asp as certnew.cer answers for a request that is not issued."""
    return _page(
        "Error",
        "<DL><DT ID=locDispMsgLabel><Font Size=-1><B>Disposition message:</B></Font></DT><DD>\r\n"
        f"\t\t{escape(message, quote=False)}\r\n\t</DD></DL>",
    )
