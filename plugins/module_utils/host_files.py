# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's files in one pass: folders, small files sent inline, large files verified by sha256
and sent (only when they differ) as one archive, paths that must be gone.

Runs on the host (k8snet.fabric.host_files). A pass over an unchanged host reads and hashes,
writes nothing and costs one module run - the per-file tasks it replaces cost five SSH round
trips a file. Every write is atomic (a temporary file in the same folder, then a rename) and a
large file replaces its old copy only after its sha256 matched.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import tempfile

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import FabricError

REDACTED = "<redacted>"
CHUNK = 1 << 20

FILE_OPTIONS = {
    "dest": {"type": "str", "required": True},
    "mode": {"type": "str", "required": True},
    "content": {"type": "str"},
    "secret_content": {"type": "str", "no_log": True},
    "src": {"type": "path"},
    "sha256": {"type": "str"},
}
ARGUMENT_SPEC = {
    "root": {"type": "str", "default": ""},
    "directories": {"type": "list", "elements": "dict", "default": [],
                    "options": {"path": {"type": "str", "required": True}, "mode": {"type": "str", "required": True}}},
    "files": {"type": "list", "elements": "dict", "default": [], "options": FILE_OPTIONS,
              "mutually_exclusive": [["content", "secret_content", "src"]],
              "required_one_of": [["content", "secret_content", "src"]],
              "required_by": {"src": "sha256"}},
    "absent": {"type": "list", "elements": "str", "default": []},
    # Set by the action plugin. staging: where the first run makes a folder for the archive (when
    # the module runs as the user who sends it); archive: the second run's archive of the large files.
    "staging": {"type": "str"},
    "archive": {"type": "str"},
}


class HostFilesError(FabricError):
    """The host holds something the files cannot replace (a checksum mismatch, a file where a folder goes)."""


def problems(params: dict) -> list[str]:
    """What is wrong with the request, each naming the field and value (nothing is touched when any)."""
    found = []
    paths = [("directories", i, d["path"]) for i, d in enumerate(params["directories"])]
    paths += [("files", i, f["dest"]) for i, f in enumerate(params["files"])]
    paths += [("absent", i, p) for i, p in enumerate(params["absent"])]
    for field, index, path in paths:
        if not path.startswith("/") or "/../" in path + "/" or "//" in path:
            found.append(f"{field}[{index}]: {path!r} is not a clean absolute path")
    for field, entries, key in (("directories", params["directories"], "path"), ("files", params["files"], "dest")):
        for index, entry in enumerate(entries):
            if mode_of(entry["mode"]) is None:
                found.append(f"{field}[{index}].mode ({entry[key]}): {entry['mode']!r} is not an octal mode such as '0644'")
    for index, entry in enumerate(params["files"]):
        digest = entry.get("sha256")
        if entry.get("src") is not None and (len(digest or "") != 64 or any(c not in "0123456789abcdef" for c in digest)):
            found.append(f"files[{index}].sha256 ({entry['dest']}): {digest!r} is not a sha256 (64 lowercase hex digits)")
    dests = [f["dest"] for f in params["files"]]
    for dest in sorted({d for d in dests if dests.count(d) > 1}):
        found.append(f"files: {dest} is listed more than once")
    for path in sorted(set(dests) & set(params["absent"])):
        found.append(f"absent: {path} is also in files")
    return found


def mode_of(text: str):
    try:
        value = int(text, 8)
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= 0o7777 else None


def sha256_of(path: str):
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(CHUNK), b""):
                digest.update(block)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def _mode(path: str):
    try:
        return stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None


def _atomic(dest: str, write, mode: int) -> None:
    """Write through write(handle) into a temporary file next to dest, then rename it over dest."""
    folder = os.path.dirname(dest)
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".k8snet-")
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def converge(params: dict, check_mode: bool, want_diff: bool) -> dict:
    """Make the host's files what params say. Large files (src) that differ are not written here
    but listed in ``missing`` - unless params carries their ``archive``, then they are placed from
    it. Returns ``directories``, ``written``, ``removed`` (paths that changed), ``missing``,
    ``verified`` (large files whose sha256 was checked on the host) and ``diff``."""
    root = params["root"].rstrip("/")
    result = {"directories": [], "written": [], "removed": [], "missing": [], "verified": [], "diff": []}
    for entry in params["directories"]:
        path, mode = root + entry["path"], mode_of(entry["mode"])
        current = _mode(path)
        if current is not None and not os.path.isdir(path):
            raise HostFilesError(f"directories: {entry['path']} exists on the host and is not a folder")
        if current != mode:
            result["directories"].append(entry["path"])
            if not check_mode:
                os.makedirs(path, exist_ok=True)
                os.chmod(path, mode)
    archived = _members(params.get("archive"))
    try:
        for entry in params["files"]:
            dest, mode = entry["dest"], mode_of(entry["mode"])
            path = root + dest
            if entry.get("src") is not None:
                _large(entry, path, mode, archived, check_mode, want_diff, result)
            else:
                _small(entry, path, mode, check_mode, want_diff, result)
    finally:
        if archived is not None:  # placed or refused, the archive goes, and its folder when it held only that
            os.unlink(params["archive"])
            try:
                os.rmdir(os.path.dirname(params["archive"]))
            except OSError:
                pass
    for path in params["absent"]:
        if os.path.lexists(root + path):
            result["removed"].append(path)
            if want_diff:
                result["diff"].append({"before_header": path, "after_header": f"{path} (removed)", "before": "", "after": ""})
            if not check_mode:
                os.unlink(root + path)
    if result["missing"] and params.get("staging") and not check_mode:
        staging = os.path.expanduser(params["staging"])
        os.makedirs(staging, mode=0o700, exist_ok=True)
        result["upload_dir"] = tempfile.mkdtemp(prefix="k8snet-host-files-", dir=staging)
    return result


def _small(entry: dict, path: str, mode: int, check_mode: bool, want_diff: bool, result: dict) -> None:
    secret = entry.get("secret_content") is not None
    text = entry["secret_content"] if secret else entry["content"]
    data = text.encode("utf-8")
    try:
        with open(path, "rb") as handle:
            before = handle.read()
    except FileNotFoundError:
        before = None
    if before == data and _mode(path) == mode:
        return
    result["written"].append(entry["dest"])
    if want_diff:
        if secret:  # two different texts, or the diff shows nothing at all
            shown = {"before": REDACTED + "\n" if before is not None else "", "after": REDACTED + " (changed)\n"}
        else:
            shown = {"before": (before or b"").decode("utf-8", "replace"), "after": text}
        result["diff"].append({"before_header": entry["dest"], "after_header": entry["dest"], **shown})
    if not check_mode:
        _atomic(path, lambda out: out.write(data), mode)


def _large(entry: dict, path: str, mode: int, archived, check_mode: bool, want_diff: bool, result: dict) -> None:
    dest, expected = entry["dest"], entry["sha256"]
    if archived is not None and member_name(dest) in archived:
        member, tar = archived[member_name(dest)]
        digest = hashlib.sha256()

        def copy(out):
            source = tar.extractfile(member)
            for block in iter(lambda: source.read(CHUNK), b""):
                digest.update(block)
                out.write(block)
            if digest.hexdigest() != expected:
                raise HostFilesError(f"files: {dest} arrived with sha256 {digest.hexdigest()}, expected {expected} "
                                     f"({entry['src']} on the controller); the old copy is kept")
        _atomic(path, copy, mode)
        result["written"].append(dest)
        result["verified"].append(dest)
        return
    current = sha256_of(path)
    if current == expected:
        result["verified"].append(dest)
        if _mode(path) != mode:
            result["written"].append(dest)
            if not check_mode:
                os.chmod(path, mode)
        return
    result["missing"].append(dest)
    if check_mode:  # the second run that would place it never comes: say it here
        result["written"].append(dest)
    if want_diff:
        result["diff"].append({"before_header": dest, "after_header": dest,
                               "before": f"sha256 {current}\n" if current else "",
                               "after": f"sha256 {expected} ({os.path.basename(entry['src'])})\n"})


def member_name(dest: str) -> str:
    """A large file's name in the archive: its dest without the leading slash."""
    return dest.lstrip("/")


def _members(archive):
    """The archive's files by name (member_name)."""
    if archive is None:
        return None
    tar = tarfile.open(archive, "r:")
    return {member.name: (member, tar) for member in tar.getmembers() if member.isfile()}
