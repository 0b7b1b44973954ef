# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_files: one module run checks and places everything that fits in its arguments and hashes
the large files on the host; only when some differ, they go over as one archive (one transfer)
and a second run places them. An unchanged host: one round trip. A first install: three (module,
transfer, module), two more with become (Ansible's temporary folder: home, mkdir)."""

from __future__ import annotations

import os
import tarfile
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.k8snet.fabric.plugins.module_utils import host_files

MODULE = "k8snet.fabric.host_files"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False  # a temporary folder only when something must be sent

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(host_files.ARGUMENT_SPEC)[1]
        found = host_files.problems(args)
        for index, entry in enumerate(args["files"]):
            if entry.get("src") is not None and not os.path.isfile(entry["src"]):
                found.append(f"files[{index}].src ({entry['dest']}): {entry['src']} is not a file on the controller")
        found += [f"{key}: set by the action itself, not by tasks" for key in ("staging", "archive") if args.get(key) is not None]
        if found:
            raise AnsibleActionFail("host_files: nothing was changed; " + "; ".join(found))
        module_args = dict(self._task.args)
        # Sending as the user the module runs as (no become): the first run makes the archive's
        # folder itself, saving the two round trips of Ansible's temporary folder (home, mkdir).
        if not self._play_context.become:
            module_args["staging"] = self.get_shell_option("remote_tmp", default="~/.ansible/tmp")
        first = self._execute_module(MODULE, module_args=module_args, task_vars=task_vars)
        if first.get("failed"):
            return self._finish(result, first)
        sent = list(first["missing"])
        if sent and not self._task.check_mode:
            second = self._send(args, sent, first.pop("upload_dir", None), task_vars)
            if second.get("failed"):
                return self._finish(result, second)
            first["written"] += second["written"]
            first["verified"] += second["verified"]
        first["sent"] = sent
        return self._finish(result, first)

    def _send(self, args: dict, dests: list, upload_dir, task_vars: dict) -> dict:
        """The large files in dests, as one archive, then the module run that places them."""
        wanted = [entry for entry in args["files"] if entry["dest"] in dests]
        made = upload_dir is None and self._connection._shell.tmpdir is None
        remote_dir = upload_dir or self._connection._shell.tmpdir or self._make_tmp_path()
        with tempfile.TemporaryDirectory(prefix="k8snet-host-files-") as local_dir:
            archive = os.path.join(local_dir, "files.tar")
            with tarfile.open(archive, "w") as tar:
                for entry in wanted:
                    tar.add(entry["src"], arcname=host_files.member_name(entry["dest"]), recursive=False)
            remote = self._connection._shell.join_path(remote_dir, "files.tar")
            self._transfer_file(archive, remote)
        if upload_dir is None:
            self._fixup_perms2([remote_dir, remote], execute=False)  # readable by the become user
        placed = self._execute_module(MODULE, task_vars=task_vars, module_args={
            "root": args["root"], "archive": remote,
            "files": [{key: entry[key] for key in ("dest", "mode", "src", "sha256")} for entry in wanted]})
        if made and not placed.get("failed") and self._is_pipelining_enabled("new"):
            self._connection._shell.tmpdir = None  # the module removed the archive and so its folder: no rm round trip
        return placed

    @staticmethod
    def _finish(result: dict, outcome: dict) -> dict:
        outcome.pop("invocation", None)  # the arguments hold the files' text: never echoed back
        outcome.pop("missing", None)
        result.update(outcome)
        return result
