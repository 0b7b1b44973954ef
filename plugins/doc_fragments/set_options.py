# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options of every module that converges a named set (runner.SET_ARGSPEC)."""

    DOCUMENTATION = r"""
options:
  name:
    description:
      - Name of the set; also the name of its parent Secret. Required for every state that
        talks to a cluster.
    type: str
  set_namespace:
    description: Namespace of the set's parent Secret.
    type: str
    default: default
  namespace:
    description: Namespace given to namespaced objects that declare none.
    type: str
  state:
    description:
      - C(merged) creates objects and merges the declared fields into them; it never removes
        anything (strategic merge patch for built-in kinds, JSON merge patch for custom ones).
      - C(replaced) server-side applies each object with field manager C(k8snet.fabric); each
        ends with exactly the declared content for the fields this collection manages; fields
        it set before and no longer declares are removed; other managers' fields stay.
      - C(overridden) is C(replaced), and members the set applied before but no longer declares
        are deleted (pruned).
      - C(deleted) deletes the declared objects, or the whole set and its parent when none are
        declared.
      - C(gathered) returns the live members of the set.
      - C(rendered) needs no cluster; returns the objects, validates built-in kinds offline
        against O(kubernetes_version) and writes them to O(dest).
      - C(parsed) reads O(content)/O(src) into structured objects, offline.
    type: str
    choices: [merged, replaced, overridden, deleted, gathered, rendered, parsed]
    default: merged
  workers:
    description: Requests in flight at once.
    type: int
    default: 8
  force_conflicts:
    description:
      - Take over fields owned by another field manager instead of failing with a conflict
        that names the manager and the field.
    type: bool
    default: false
  only_existing:
    description:
      - Change only objects that already exist; absent ones are reported C(skipped), never
        created. For objects other components own, such as Node labels.
    type: bool
    default: false
  report_unchanged:
    description:
      - List unchanged objects in C(results) too. V(false) lists only the objects that changed,
        failed or were skipped, while C(summary) still counts every object - for sets of thousands
        of objects, where an unchanged run's result would otherwise name each one (10,000 objects,
        1.1 MB, about 0.3 s of the controller's time, and that much in AWX's job events).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for declared Namespaces to be Active and CRDs Established.
    type: float
    default: 60
  await_kinds:
    description:
      - Seconds to wait for kinds the cluster does not serve yet because another installer is
        creating their CRDs (K3s applying a release manifest, an operator starting). C(0) makes
        a kind that is not served an error at once. Objects are still validated before any write.
    type: float
    default: 0
  pending_kinds:
    description:
      - Kinds (C(apiVersion), C(kind)) whose CRDs an earlier task of the run installs - the
        RV(k8snet.fabric.controllers#module:pending_kinds) of M(k8snet.fabric.controllers).
        In check mode, where nothing was installed, their objects are reported as created
        instead of failing as not served; in a real run they are served by then.
    type: list
    elements: dict
    default: []
  pending_namespaces:
    description:
      - Namespaces an earlier task of the run creates (another set declaring them). In check
        mode, where they were not created, objects in those that do not exist are validated
        in a stand-in namespace instead of failing as having no namespace; a real run ignores
        this option, as they exist by then.
    type: list
    elements: str
    default: []
  dest:
    description: With O(state=rendered), the file the objects are written to (Secret values redacted); in
      check mode it is not written, and with C(--diff) the change to it is shown.
    type: path
  kubernetes_version:
    description: With O(state=rendered), the Kubernetes version whose schemas validate built-in kinds.
    type: str
    default: "1.37"
"""
