#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_files
short_description: Place and verify every file of a host in one pass
version_added: "0.1.0"
description:
  - Makes a host's folders, files and removed paths what the task says, in one module run on
    the host - where a task per file costs about five SSH round trips a file, an unchanged host
    costs one round trip in all.
  - Small files (O(files[].content), O(files[].secret_content)) travel inside the module's
    arguments. Large files (O(files[].src) on the controller, with their O(files[].sha256)) are
    hashed on the host; only those that differ are sent, together, as one archive in one
    transfer, and each replaces its old copy only after its sha256 matched on the host.
  - Every request is checked before anything is touched (clean absolute paths, octal modes,
    sha256 values, a path listed twice); the error names the field and the value.
  - Writes are atomic (a temporary file in the same folder, renamed over the old one); a file is
    rewritten only when its bytes or mode differ, so a second run reports no change.
  - Check mode writes and sends nothing. C(--diff) shows small files' text (secret ones as
    C(<redacted>)) and large files' sha256 before and after.
options:
  root:
    description:
      - Prefix of every path on the host (C("") on real hosts; test hosts write below their own folder).
    type: str
    default: ""
  directories:
    description: Folders to create, in order, with their mode (an existing folder gets its mode fixed).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path on the host.
        type: str
        required: true
      mode:
        description: Octal mode, e.g. C("0755").
        type: str
        required: true
  files:
    description: Files the host must have. Exactly one of O(files[].content), O(files[].secret_content) or O(files[].src).
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path on the host.
        type: str
        required: true
      mode:
        description: Octal mode, e.g. C("0644").
        type: str
        required: true
      content:
        description: The file's text.
        type: str
      secret_content:
        description: The file's text when it holds a secret - never logged, redacted in diffs.
        type: str
      src:
        description: A file on the controller (sent only when the host's copy differs).
        type: path
      sha256:
        description: The sha256 O(files[].src) must have (verified on the controller's side beforehand); required with O(files[].src).
        type: str
  absent:
    description: Absolute paths that must not exist on the host.
    type: list
    elements: str
    default: []
  staging:
    description: Set by the action plugin, not by tasks - where the first run makes the folder the archive is sent to.
    type: str
  archive:
    description: Set by the action plugin, not by tasks - the archive of large files the second run places.
    type: str
author:
  - k8snet.fabric contributors (@k8snet)
notes:
  - An action plugin drives the module (it sends the archive between two module runs); it needs
    Python on the host, as every module does.
attributes:
  check_mode:
    support: full
    description: Reports every folder, file and removal a run would make; writes and sends nothing.
  diff_mode:
    support: full
    description: Small files' text before and after (secret ones redacted), large files' sha256.
"""

EXAMPLES = r"""
- name: Place K3s's files
  k8snet.fabric.host_files:
    directories:
      - {path: /etc/rancher/k3s, mode: "0755"}
    files:
      - {dest: /usr/local/bin/k3s, mode: "0755", src: /srv/k3s/k3s, sha256: "{{ k3s_sha256 }}"}
      - {dest: /etc/rancher/k3s/config.yaml, mode: "0600", content: "{{ config | to_nice_yaml }}"}
      - {dest: /etc/systemd/system/k3s.service.env, mode: "0600", secret_content: "K3S_TOKEN={{ token }}\n"}
    absent:
      - /etc/systemd/system/k3s-agent.service
  register: placed
"""

RETURN = r"""
directories:
  description: Folders created or whose mode was fixed.
  returned: always
  type: list
  elements: str
written:
  description: Files written or whose mode was fixed (in check mode, that would be).
  returned: always
  type: list
  elements: str
removed:
  description: Paths from O(absent) that existed and were removed.
  returned: always
  type: list
  elements: str
sent:
  description: Large files that differed on the host and were sent (in one archive).
  returned: always
  type: list
  elements: str
verified:
  description: Large files whose sha256 was checked on the host and matched.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.k8snet.fabric.plugins.module_utils import host_files
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import reported


def main():
    module = AnsibleModule(argument_spec=host_files.ARGUMENT_SPEC, supports_check_mode=True)
    found = host_files.problems(module.params)
    if found:
        module.fail_json(msg="host_files: nothing was changed; " + "; ".join(found))
    with reported(module, prefix="host_files: "):
        result = host_files.converge(module.params, module.check_mode, module._diff)
    diff = result.pop("diff")
    changed = any(result[key] for key in ("directories", "written", "removed"))
    module.exit_json(changed=changed, **({"diff": diff} if diff else {}), **result)


if __name__ == "__main__":
    main()
