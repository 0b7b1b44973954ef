# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the engine. Every message names the object, field or value it is about."""

from __future__ import annotations

import contextlib


class FabricError(Exception):
    """Base of every error the engine raises on purpose; ``str()`` is the user-facing text."""

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class ValidationError(FabricError):
    """Bad input, found before anything was sent to a cluster."""


class ClusterUnreachable(FabricError):
    """The cluster could not be reached or the connection settings are unusable."""


class ApiError(FabricError):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str, body: dict | None = None,
                 method: str = "", path: str = ""):
        self.status = status
        self.reason = reason
        self.body = body or {}
        self.method = method
        self.path = path
        super().__init__(message, status=status, reason=reason)

    @property
    def causes(self) -> list[dict]:
        return (self.body.get("details") or {}).get("causes") or []


class DiscoveryError(FabricError):
    """An apiVersion/kind the server does not serve."""


@contextlib.contextmanager
def reported(module, prefix: str = "", **extra):
    """The one error tail of every module: an error the engine raised on purpose, or a file the
    host refused, becomes ``fail_json`` with its message and its details (a set run's
    ``results``, an API error's ``status`` and ``reason``); anything else stays a traceback,
    because it is a bug. ``module`` is anything with ``fail_json`` (the engine imports no Ansible)."""
    try:
        yield
    except FabricError as exc:
        module.fail_json(msg=prefix + str(exc), **{**exc.details, **extra})
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        module.fail_json(msg=f"{prefix}{where}{exc.strerror or exc}", **extra)
