"""A strict multipart/form-data reader for the detection stand-in.

The stdlib no longer ships one (`cgi` is gone in 3.13) and the stand-in must stay dependency-free;
it also has to be exact about bytes, because the parts are JPEGs.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import HTTP


@dataclass(frozen=True, slots=True)
class Part:
    name: str | None
    filename: str | None  # None for a plain form field
    content_type: str
    data: bytes


def parse_form_data(content_type: str, body: bytes) -> list[Part]:
    """The parts of a multipart/form-data body; ValueError when the body does not follow RFC 7578."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise ValueError("Content-Type is not multipart/form-data with a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    sections = (b"\r\n" + body).split(delimiter)
    # sections: preamble, then one per part (each starting with CRLF), then "--" and the epilogue.
    if len(sections) < 2 or not sections[-1].startswith(b"--"):
        raise ValueError("multipart body has no closing delimiter")
    parts = []
    for section in sections[1:-1]:
        head, separator, data = section.partition(b"\r\n\r\n")
        if not head.startswith(b"\r\n") or not separator:
            raise ValueError("multipart part without headers")
        headers = BytesHeaderParser(policy=HTTP).parsebytes(head[2:] + b"\r\n\r\n")
        if headers.get_content_disposition() != "form-data":
            raise ValueError("multipart part is not form-data")
        parts.append(
            Part(
                name=headers.get_param("name", header="content-disposition"),
                filename=headers.get_filename(),
                content_type=headers.get_content_type(),
                data=data,
            )
        )
    return parts
