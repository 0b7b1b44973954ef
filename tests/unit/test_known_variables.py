"""Unknown variables and keys named with the closest known name (module_utils/unknown_variables.py)."""

from __future__ import annotations

import yaml

from ansible_collections.k8snet.fabric.plugins.module_utils import unknown_variables
from tests.helpers import REPO

OPTIONS = {"shop_tiers": {"type": "list", "elements": "dict", "options": {"name": {"type": "str"}, "port": {"type": "int"}}},
           "shop_lb": {"type": "dict", "options": {"policy": {"type": "str"},
                                                   "tls": {"type": "dict", "options": {"arn": {"type": "str"}}}}},
           "shop_free": {"type": "dict"}}


def test_a_misspelt_variable_names_the_closest_one():
    assert unknown_variables.unknown({"shop_tirs": [], "shop_plan": {}, "other_var": 1}, OPTIONS, {"shop_plan"}, "shop") == [
        "shop_tirs is not a variable of shop (did you mean shop_tiers?)"]


def test_unknown_keys_at_any_depth_and_in_list_elements():
    given = {"shop_tiers": [{"name": "web", "prot": 80}], "shop_lb": {"policy": "x", "tls": {"ar": "y"}},
             "shop_free": {"anything": 1}}
    assert unknown_variables.unknown(given, OPTIONS, set(), "shop") == [
        "shop_lb.tls.ar is not a key of shop_lb.tls (did you mean arn?)",
        "shop_tiers[0].prot is not a key of shop_tiers[0] (did you mean port?)"]


def test_nothing_close_lists_the_known_names_and_wrong_types_are_left_to_the_spec():
    assert unknown_variables.unknown({"shop_lb": {"zzz": 1}}, OPTIONS, set(), "shop") == [
        "shop_lb.zzz is not a key of shop_lb (known: policy, tls)"]
    assert unknown_variables.unknown({"shop_lb": "a string", "shop_tiers": ["web"]}, OPTIONS, set(), "shop") == []


def test_internal_names_are_registers_and_set_fact_keys():
    tasks = [{"name": "a", "ansible.builtin.set_fact": {"shop_plan": 1, "cacheable": True}},
             {"block": [{"name": "b", "k8snet.fabric.resource_set": {}, "register": "shop_live"}]}]
    assert unknown_variables.internal_names(tasks) == {"shop_plan", "shop_live"}


def test_every_role_defaults_are_known_to_its_argument_spec():
    """What the roles ship passes their own check (a default missing from the spec would be
    refused as unknown)."""
    for role in ("ecommerce_net", "edge_k3s", "hybrid_dns", "istio_mesh", "kubefed"):
        defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
        options = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
        plain = {k: v for k, v in defaults.items() if not (isinstance(v, str) and "{{" in v)}
        assert unknown_variables.unknown(plain, options, set(), role) == [], role


def test_argument_specs_show_the_defaults_the_roles_ship():
    """ansible-doc -t role showed 'default: null' for every option; the specs now carry each
    default, and this keeps them equal to defaults/main.yml."""
    for role in ("ecommerce_net", "edge_k3s", "hybrid_dns", "istio_mesh", "kubefed"):
        defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
        specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        for entry, spec in specs.items():
            # A default computed from other variables ("{{ ... }}") stays in defaults/main.yml only: a
            # template is no value of the option's type (antsibull-docs refuses it).
            drift = {k: (spec["options"][k].get("default"), v) for k, v in defaults.items()
                     if spec["options"][k].get("default") != v and "{{" not in str(v)}
            assert drift == {}, f"{role} {entry}: argument spec default != defaults/main.yml: {drift}"


def test_k3s_ansibles_names_are_refused_naming_the_roles_variable():
    given = {"k3s_version": "v1.31.1+k3s1", "token": "secret", "extra_server_args": "--x", "unrelated": 1}
    problems = unknown_variables.role_problems(str(REPO / "roles" / "edge_k3s"), "edge_k3s", given, given.get)
    assert problems[:3] == [
        "extra_server_args is k3s-ansible's variable and does nothing here: set edge_k3s_server_config",
        "k3s_version is k3s-ansible's variable and does nothing here: set edge_k3s_version",
        "token is k3s-ansible's variable and does nothing here: set edge_k3s_token"]
    other = {"token": "x", "fabric_mode": "render"}
    assert unknown_variables.role_problems(str(REPO / "roles" / "ecommerce_net"), "ecommerce_net", other, other.get) == [], \
        "only the edge role knows k3s-ansible's names"
