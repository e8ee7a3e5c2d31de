"""Bearer tokens and roles.

Three roles: ``submit`` (submit and cancel goals), ``review`` (decide reviews) and
``admin`` (everything, and the only role that reads the audit log); every role may read
goals, reviews, the tree and metrics. On first start the daemon writes a random admin
token to ``STATE_DIR/token`` (mode 0600), which the CLI on the same machine reads. More
tokens, per role, come from a TOML file given with ``--tokens``::

    admin = ["…"]
    submit = ["…", "…"]
    review = "…"

Tokens are compared by their SHA-256 digest, so lookups take the same time whatever the
guess, and the audit log names a token by the first 8 hex digits of its digest.
"""

from __future__ import annotations

import enum
import hashlib
import os
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path

import attrs

__all__ = ["TOKEN_FILE", "AuthError", "Role", "Tokens", "fingerprint", "read_token"]

TOKEN_FILE = "token"
MIN_TOKEN_LENGTH = 16


class Role(enum.Enum):
    """What a token may do."""

    SUBMIT = "submit"
    REVIEW = "review"
    ADMIN = "admin"

    def may(self, needed: Role | None) -> bool:
        """Whether this role may call an endpoint that needs ``needed`` (``None``: any)."""
        return needed is None or self is Role.ADMIN or self is needed


class AuthError(Exception):
    """A token file that cannot be used; the message says why and where."""


def fingerprint(token: str) -> str:
    """A short, non-secret name for ``token``: the start of its SHA-256 digest."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


@attrs.frozen
class Identity:
    """Who is asking: the role of the token, and the token's fingerprint."""

    role: Role
    token: str


@attrs.frozen
class Tokens:
    """The tokens the daemon accepts. ``configured``: an operator gave tokens (``--tokens``)."""

    by_digest: Mapping[bytes, Role]
    configured: bool

    def identify(self, authorization: str | None) -> Identity | None:
        """The identity behind an ``Authorization: Bearer …`` header, or ``None``."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        role = self.by_digest.get(hashlib.sha256(token.encode()).digest())
        return Identity(role, fingerprint(token)) if role is not None else None

    @classmethod
    def load(cls, state_dir: Path, tokens_file: Path | None = None) -> Tokens:
        """The generated admin token (made on first use) plus those in ``tokens_file``."""
        tokens: dict[bytes, Role] = {}
        for role, token in _from_file(tokens_file) if tokens_file is not None else ():
            tokens[hashlib.sha256(token.encode()).digest()] = role
        generated = ensure_token(state_dir)
        tokens.setdefault(hashlib.sha256(generated.encode()).digest(), Role.ADMIN)
        return cls(tokens, configured=tokens_file is not None)


def _from_file(path: Path) -> list[tuple[Role, str]]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise AuthError(f"cannot read the tokens file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AuthError(f"the tokens file {path} is not valid TOML: {exc}") from None
    found: list[tuple[Role, str]] = []
    for key, value in data.items():
        try:
            role = Role(key)
        except ValueError:
            raise AuthError(
                f"{path}: unknown role {key!r}; the roles are admin, submit and review"
            ) from None
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise AuthError(f"{path}: {key} must be a token or a list of tokens")
        for token in values:
            if len(token) < MIN_TOKEN_LENGTH or token != token.strip():
                raise AuthError(
                    f"{path}: a {key} token is shorter than {MIN_TOKEN_LENGTH} characters or "
                    "has surrounding spaces; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
            found.append((role, token))
    if not found:
        raise AuthError(f"{path} names no tokens")
    return found


def ensure_token(state_dir: Path) -> str:
    """The admin token in ``state_dir/token``, generated (mode 0600) if there is none."""
    path = state_dir / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    return token


def read_token(path: Path) -> str:
    """The token stored in ``path``; raises :class:`AuthError` when it is unusable."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise AuthError(f"cannot read the token file {path}: {exc.strerror}") from None
    if not token:
        raise AuthError(f"the token file {path} is empty")
    return token
