"""User routes: sign-up, login and logout (sessions and their cookies), profiles."""

from __future__ import annotations

import email.utils
import re
import time
from typing import Any

from .. import store
from .errors import AppError
from .request import Request
from .responses import Response, json_response
from .routing import require_id
from .settings import setting, setting_bool, setting_int

DEFAULT_SESSION_HOURS = 720
RESERVED_USERNAMES = frozenset({"all", "channel", "matterbot", "system"})
USERNAME_RE = re.compile(r"^[a-z0-9.\-_]{1,64}$")
EMAIL_RE = re.compile(r"^[^@\s\"<>(),;:]+@[^@\s\"<>(),;:]+$")
PASSWORD_SYMBOLS = " !\"\\#$%&'()*+,-./:;<=>?@[]^_`|~"  # noqa: S105 - a character class


def sanitize_user(req: Request, user: dict[str, Any]) -> dict[str, Any]:
    """What the caller may see of a user: everything for themself and admins, a profile for others."""
    session = req.session
    if session and (session["user_id"] == user["id"] or req.is_system_admin()):
        return user
    user = dict(user, notify_props={}, email_verified=False)
    user.pop("last_password_update", None)
    if not setting_bool(req.app, "PrivacySettings", "ShowEmailAddress", True):
        user["email"] = ""
    if not setting_bool(req.app, "PrivacySettings", "ShowFullName", True):
        user["first_name"] = user["last_name"] = ""
    return user


def check_password_rules(app: Any, password: str) -> None:
    minimum = setting_int(app, "PasswordSettings", "MinimumLength", 8)
    rules = [
        ("lowercase", "PasswordSettings", "Lowercase", lambda p: any(c.islower() for c in p)),
        ("uppercase", "PasswordSettings", "Uppercase", lambda p: any(c.isupper() for c in p)),
        ("number", "PasswordSettings", "Number", lambda p: any(c.isdigit() for c in p)),
        ("symbol", "PasswordSettings", "Symbol", lambda p: any(c in PASSWORD_SYMBOLS for c in p)),
    ]
    failed = [
        name
        for name, section, key, ok in rules
        if setting_bool(app, section, key, False) and not ok(password)
    ]
    if len(password) > 72:
        raise AppError(400, "model.user.pre_save.password_too_long.app_error", "Password is too long.")
    if len(password) < minimum or failed:
        suffix = "".join("_" + name for name in failed)
        raise AppError(
            400,
            f"model.user.is_valid.pwd{suffix}.app_error",
            f"Your password must contain at least {minimum} characters"
            + (" and " + ", ".join(failed) if failed else "")
            + ".",
        )


def create_user(req: Request) -> Response:
    data = req.json_object("user")
    first_user = store.count_users(req.db) == 0
    admin = req.is_system_admin()
    if not first_user and not admin:
        if not setting_bool(req.app, "TeamSettings", "EnableUserCreation", True):
            raise AppError(501, "api.user.create_user.disabled.app_error", "User creation is disabled.")
        if not setting_bool(req.app, "TeamSettings", "EnableOpenServer", False):
            raise AppError(
                403,
                "api.user.create_user.no_open_server",
                "This server does not allow open signups.  Please speak with your Administrator to "
                "receive an invitation.",
            )
    username = str(data.get("username") or "").strip().lower()
    email = str(data.get("email") or "").strip().lower()
    password = data.get("password")
    if not USERNAME_RE.match(username) or username in RESERVED_USERNAMES:
        # The real server's message; its check (model.IsValidUsername) allows 1 to 64 characters.
        raise AppError(
            400,
            "model.user.is_valid.username.app_error",
            "Username must begin with a letter, and contain between 3 to 22 lowercase characters made up "
            "of numbers, letters, and the symbols '.', '-', and '_'.",
            f"username={username}",
        )
    if len(email) > 128 or not EMAIL_RE.match(email):
        raise AppError(400, "model.user.is_valid.email.app_error", "Invalid email.", f"email={email}")
    if not isinstance(password, str):
        raise AppError(400, "model.user.is_valid.pwd.app_error", "Invalid password.")
    check_password_rules(req.app, password)
    profile = {key: str(data.get(key) or "")[:64] for key in ("nickname", "first_name", "last_name")}
    try:
        user = store.insert_user(
            req.db,
            username=username,
            email=email,
            password=password,
            roles="system_admin system_user" if first_user else "system_user",
            position=str(data.get("position") or "")[:128],
            locale=str(data.get("locale") or "en")[:5],
            **profile,
        )
    except store.Conflict as exc:
        if exc.field == "email":
            raise AppError(
                400, "app.user.save.email_exists.app_error", "An account with that email already exists."
            ) from exc
        raise AppError(
            400, "app.user.save.username_exists.app_error", "An account with that username already exists."
        ) from exc
    return json_response(user, 201)


def _cookie(name: str, value: str, max_age: int, http_only: bool, secure: bool) -> str:
    expires = email.utils.formatdate(time.time() + max_age, usegmt=True)
    parts = [f"{name}={value}", "Path=/", f"Expires={expires}", f"Max-Age={max_age}"]
    if http_only:
        parts.append("HttpOnly")
    if secure:
        parts.append("Secure")
    parts.append("SameSite=Lax")
    return "; ".join(parts)


def login(req: Request) -> Response:
    data = req.json_object("login")
    login_id = str(data.get("login_id") or "")
    password = data.get("password")
    if not isinstance(password, str) or not password:
        raise AppError(400, "api.user.login.blank_pwd.app_error", "Password field must not be blank")
    if data.get("id"):
        found = store.find_user_for_login_by_id(req.db, str(data["id"]))
    else:
        found = store.find_user_for_login(req.db, login_id) if login_id else None
    if found is None or not store.check_password(password, found[1]):
        raise AppError(
            401,
            "api.user.login.invalid_credentials_email_username",
            "Enter a valid email or username and/or password.",
        )
    user = found[0]
    if user["delete_at"]:
        raise AppError(
            401,
            "api.user.login.inactive.app_error",
            "Login failed because your account has been deactivated.",
        )
    hours = setting_int(req.app, "ServiceSettings", "SessionLengthWebInHours", DEFAULT_SESSION_HOURS)
    session = store.create_session(
        req.db, user["id"], user["roles"], hours * 3600 * 1000, str(data.get("device_id") or "")
    )
    secure = str(setting(req.app, "ServiceSettings", "SiteURL", "")).startswith("https://")
    max_age = hours * 3600
    headers = [
        ("Token", session["token"]),
        ("Set-Cookie", _cookie("MMAUTHTOKEN", session["token"], max_age, True, secure)),
        ("Set-Cookie", _cookie("MMUSERID", user["id"], max_age, False, secure)),
        ("Set-Cookie", _cookie("MMCSRF", session["csrf_token"], max_age, False, secure)),
    ]
    return json_response(user, 200, headers)


def logout(req: Request) -> Response:
    session = req.session
    if session:
        store.delete_session(req.db, session["token"])
    headers = [
        ("Set-Cookie", f"{name}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0")
        for name in ("MMAUTHTOKEN", "MMUSERID", "MMCSRF")
    ]
    return json_response({"status": "OK"}, 200, headers)


def user_param(req: Request, user_id: str) -> str:
    if user_id == "me":
        return req.user_id
    return require_id(user_id, "user_id")


def get_user(req: Request, user_id: str) -> Response:
    req.require_session()
    user = store.get_user(req.db, user_param(req, user_id))
    if user is None:
        raise AppError(404, "app.user.missing_account.const", "Unable to find the user.")
    return json_response(sanitize_user(req, user))
