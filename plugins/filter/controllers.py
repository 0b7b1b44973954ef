# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""needed_controllers: the controllers a list of objects needs (see needed_controllers.yml)."""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils import controllers
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import catalogue
from ansible_collections.k8snet.fabric.plugins.plugin_utils.filters import expect_type, reporting


@reporting
def needed_controllers(objects):
    """The controllers whose APIs ``objects`` use: name, title and kinds of each."""
    return [{"name": name, "title": catalogue.BY_NAME[name].title, "kinds": controllers.describe(kinds),
             "summary": f"{catalogue.BY_NAME[name].title}: {controllers.describe(kinds)}",
             "installable": bool(catalogue.BY_NAME[name].manifest)}
            for name, kinds in catalogue.needed(expect_type(objects, list, "a list of objects")).items()]


class FilterModule:
    def filters(self):
        return {"needed_controllers": needed_controllers}
