# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way a filter reports bad input: the engine's error, named after the filter."""

from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import FabricError, ValidationError


def reporting(filter_function):
    """An engine error (``FabricError``) raised by the filter becomes ``AnsibleFilterError``
    prefixed with the filter's name; anything else stays a traceback, because it is a bug."""
    @functools.wraps(filter_function)
    def run(*args, **kwargs):
        try:
            return filter_function(*args, **kwargs)
        except FabricError as exc:
            # from None: ansible-core 2.19 appends a chained cause to the message, which already holds it.
            raise AnsibleFilterError(f"{filter_function.__name__}: {exc}") from None
    return run


def expect_type(value, kind: type, what: str):
    """``value`` when it is a ``kind``, else a ValidationError naming ``what`` was expected."""
    if not isinstance(value, kind):
        raise ValidationError(f"expected {what}, got {type(value).__name__}")
    return value
