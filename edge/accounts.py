"""Creating and changing clerks' accounts: ops of the ``account`` kind (id = username)."""

from __future__ import annotations

import re

from edge.auth import MIN_PASSWORD, ROLES, hash_password
from edge.errors import Conflict, InvalidInput
from edge.node import Node
from sync.fold import Rejected

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,31}")


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("A password has at least {n} characters.", field="password", n=MIN_PASSWORD)
    if password.lower() == password or password.isalpha():
        raise InvalidInput("A password needs an upper-case letter and a digit or symbol.", field="password")


def add_account(
    node: Node, username: str, full_name: str, role: str, password: str, unit: str | None = None
) -> None:
    if not _USERNAME.fullmatch(username):
        raise InvalidInput("A username is 3-32 lowercase letters, digits, '.', '_' or '-'.", field="username")
    if role not in ROLES:
        raise InvalidInput("Unknown role.", field="role")
    if not full_name.strip():
        raise InvalidInput("Enter the full name.", field="full_name")
    check_password_strength(password)
    node.require_reference_author("Accounts")
    unit = unit or node.config.unit
    payload = {
        "username": username,
        "full_name": full_name.strip(),
        "unit": unit,
        "role": role,
        "password_hash": hash_password(password),
        "active": True,
    }
    try:
        with node.replica.write() as w:
            if not w.state("unit", unit):
                raise InvalidInput("Unknown unit {code}.", field="unit", code=unit)
            w.append("account", username, "create", payload)
    except Rejected as exc:
        raise Conflict("The account {name} already exists.", name=username) from exc


def set_password(node: Node, username: str, password: str) -> None:
    check_password_strength(password)
    try:
        with node.replica.write() as w:
            w.append("account", username, "set", {"password_hash": hash_password(password)})
    except Rejected as exc:
        raise InvalidInput("No such account.", field="username") from exc
