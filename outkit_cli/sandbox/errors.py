"""API errors: each becomes `{"error": {"message", "code"}}` with its HTTP status."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_data(message: str) -> ApiError:
    return ApiError(422, "bad_data", message)


def config_issue(message: str) -> ApiError:
    return ApiError(422, "config_issue", message)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


class RenderError(Exception):
    """A template that does not parse or fails while rendering: the message gets
    `render_error`, the request itself succeeded."""


class BackendError(Exception):
    """The delivery backend refused or could not be reached: `backend_error`."""
