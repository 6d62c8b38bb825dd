"""File routes: uploads (multipart or raw body), downloads and file infos, stored as the real server does."""

from __future__ import annotations

import email.message
import email.utils
import struct
import time
import urllib.parse
from pathlib import Path
from typing import Any

from .. import store
from .channels import can_read_channel, writable_channel
from .errors import AppError, bad_url_param, forbidden, too_large
from .request import Request
from .responses import MIME_TYPES, Response, json_response
from .routing import require_id
from .settings import setting_bool, setting_int

DEFAULT_MAX_FILE_SIZE = 104_857_600
MEDIA_TYPES_WITH_SIZE = ("image/png", "image/jpeg", "image/gif", "image/bmp")


class UploadedFile:
    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data


def _header_params(header_name: str, value: str) -> email.message.Message:
    message = email.message.Message()
    message[header_name] = value
    return message


def _multipart_parts(body: bytes, boundary: str) -> list[tuple[bytes, bytes]]:
    """(raw headers, content) of each part, by exact byte offsets so binary content stays intact."""
    delimiter = b"--" + boundary.encode("latin-1")
    bad = AppError(400, "api.file.upload_file.read_request.app_error", "Unable to parse multipart request.")
    if body.startswith(delimiter):
        position = len(delimiter)
    else:
        start = body.find(b"\r\n" + delimiter)
        if start < 0:
            raise bad
        position = start + 2 + len(delimiter)
    parts = []
    while not body.startswith(b"--", position):
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            raise bad
        position = line_end + 2
        if body.startswith(b"\r\n", position):
            raw_headers, content_start = b"", position + 2
        else:
            headers_end = body.find(b"\r\n\r\n", position)
            if headers_end < 0:
                raise bad
            raw_headers, content_start = body[position:headers_end], headers_end + 4
        next_delimiter = body.find(b"\r\n" + delimiter, content_start)
        if next_delimiter < 0:
            raise bad
        parts.append((raw_headers, body[content_start:next_delimiter]))
        position = next_delimiter + 2 + len(delimiter)
    return parts


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, list[str]], list[UploadedFile]]:
    """Split a multipart/form-data body into text fields and file parts; file bytes stay untouched."""
    boundary = _header_params("Content-Type", content_type).get_boundary()
    if not boundary:
        raise AppError(400, "api.file.upload_file.read_request.app_error", "Missing multipart boundary.")
    fields: dict[str, list[str]] = {}
    files: list[UploadedFile] = []
    for raw_headers, content in _multipart_parts(body, boundary):
        disposition = ""
        for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value.strip()
        params = _header_params("Content-Disposition", disposition)
        field = email.utils.collapse_rfc2231_value(params.get_param("name", "", "content-disposition"))
        filename = params.get_filename()
        if filename is not None:
            files.append(UploadedFile(filename, content))
        elif field:
            fields.setdefault(field, []).append(content.decode("utf-8", "replace"))
    return fields, files


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, GIF, BMP or JPEG image, (0, 0) when it cannot be read."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return 0, 0


def _jpeg_size(data: bytes) -> tuple[int, int]:
    start_of_frame = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return 0, 0
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in start_of_frame and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return 0, 0


def clean_file_name(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "").strip()
    if name in ("", ".", "..") or len(name.encode("utf-8")) > 255:
        raise AppError(
            400, "api.file.upload_file.bad_parse.app_error", "Unable to upload file. Invalid file name."
        )
    return name


def save_upload(req: Request, channel: dict[str, Any], upload: UploadedFile) -> dict[str, Any]:
    """Write the file where the real server would and record its FileInfo."""
    name = clean_file_name(upload.name)
    file_id, created = store.new_id(), store.now_ms()
    day = time.strftime("%Y%m%d", time.gmtime(created / 1000))
    team = channel["team_id"] or "noteam"
    relative = f"{day}/teams/{team}/channels/{channel['id']}/users/{req.user_id}/{file_id}/{name}"
    target = Path(req.app.data_dir) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(upload.data)
    extension = name.rsplit(".", 1)[1].lower() if "." in name else ""
    mime_type = MIME_TYPES.guess_type("x." + extension)[0] if extension else None
    width, height = image_size(upload.data) if mime_type in MEDIA_TYPES_WITH_SIZE else (0, 0)
    return store.insert_file_info(
        req.db,
        file_id=file_id,
        user_id=req.user_id,
        channel_id=channel["id"],
        created=created,
        path=relative,
        name=name,
        extension=extension,
        size=len(upload.data),
        mime_type=mime_type or "",
        width=width,
        height=height,
    )


def upload_files(req: Request) -> Response:
    req.require_session()
    if not setting_bool(req.app, "FileSettings", "EnableFileAttachments", True):
        raise AppError(
            501,
            "api.file.attachments.disabled.app_error",
            "File attachments have been disabled on this server.",
        )
    max_size = setting_int(req.app, "FileSettings", "MaxFileSize", DEFAULT_MAX_FILE_SIZE)
    if req.content_length > max_size:
        raise too_large(req.content_length, max_size)
    content_type = req.headers.get("Content-Type") or ""
    client_ids: list[str] = []
    if content_type.lower().startswith("multipart/form-data"):
        fields, uploads = parse_multipart(req.body(max_size), content_type)
        channel_id = (fields.get("channel_id") or [req.query.get("channel_id", "")])[0]
        client_ids = fields.get("client_ids", [])
    else:
        channel_id = req.query.get("channel_id", "")
        filename = req.query.get("filename", "")
        if not filename:
            raise bad_url_param("filename")
        uploads = [UploadedFile(filename, req.body(max_size))]
        if req.query.get("client_id"):
            client_ids = [req.query["client_id"]]
    if not store.is_valid_id(channel_id):
        raise bad_url_param("channel_id")
    channel = writable_channel(req, channel_id)
    if not uploads:
        raise AppError(
            400, "api.file.upload_file.incorrect_number_of_files.app_error", "No files in the request."
        )
    for upload in uploads:
        if len(upload.data) > max_size:
            raise too_large(len(upload.data), max_size)
    infos = [save_upload(req, channel, upload) for upload in uploads]
    return json_response({"file_infos": infos, "client_ids": client_ids}, 201)


def _readable_file(req: Request, file_id: str) -> dict[str, Any]:
    info = store.get_file_info(req.db, require_id(file_id, "file_id"))
    if info is None:
        raise AppError(404, "app.file_info.get.app_error", "Unable to get the file info.")
    if info["user_id"] != req.user_id:
        channel = store.get_channel(req.db, info["channel_id"])
        if channel is None or not can_read_channel(req, channel):
            raise forbidden()
    return info


def get_file(req: Request, file_id: str) -> Response:
    req.require_session()
    info = _readable_file(req, file_id)
    data_dir = Path(req.app.data_dir).resolve()
    relative = store.get_file_path(req.db, info["id"]) or ""
    path = (data_dir / relative).resolve()
    if data_dir not in path.parents or not path.is_file():
        raise AppError(404, "api.file.no_file.app_error", "Unable to find the file.")
    quoted = urllib.parse.quote(info["name"], safe="")
    ascii_name = info["name"].encode("ascii", "replace").decode("ascii").replace('"', "_")
    headers = [
        ("Content-Disposition", f"attachment;filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "max-age=2592000, private"),
    ]
    return Response(
        200, content_type=info["mime_type"] or "application/octet-stream", headers=headers, file_path=path
    )


def get_file_info(req: Request, file_id: str) -> Response:
    req.require_session()
    return json_response(_readable_file(req, file_id))
