"""AppError: how the real server reports an API failure, with the shortcuts the routes share."""

from __future__ import annotations

from .responses import Response, json_response


class AppError(Exception):
    """An API error, sent as Mattermost's AppError JSON with its HTTP status."""

    def __init__(
        self,
        status: int,
        error_id: str,
        message: str,
        detailed: str = "",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {error_id}: {message}")
        self.status = status
        self.error_id = error_id
        self.message = message
        self.detailed = detailed
        self.headers = headers or []

    def response(self, request_id: str) -> Response:
        body = {
            "id": self.error_id,
            "message": self.message,
            "detailed_error": self.detailed,
            "request_id": request_id,
            "status_code": self.status,
        }
        return json_response(body, self.status, self.headers)


def unauthorized() -> AppError:
    return AppError(
        401, "api.context.session_expired.app_error", "Invalid or expired session, please login again."
    )


def forbidden(detailed: str = "") -> AppError:
    return AppError(
        403, "api.context.permissions.app_error", "You do not have the appropriate permissions.", detailed
    )


def bad_url_param(name: str) -> AppError:
    return AppError(
        400, "api.context.invalid_url_param.app_error", f"Invalid or missing {name} parameter in request URL."
    )


def bad_body_param(name: str) -> AppError:
    return AppError(
        400, "api.context.invalid_body_param.app_error", f"Invalid or missing {name} in request body."
    )


def too_large(length: int, limit: int) -> AppError:
    return AppError(
        413,
        "api.file.upload_file.too_large_detailed.app_error",
        f"Unable to upload file. {length} bytes exceeds the maximum allowed {limit} bytes.",
    )
