# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Connection options, named as in kubernetes.core."""

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig. Defaults to E(K8S_AUTH_KUBECONFIG), then E(KUBECONFIG), then
        C(~/.kube/config); in a pod without any, the in-cluster service account.
    type: path
    aliases: [kubeconfig_path]
  context:
    description: The kubeconfig context to use. Defaults to E(K8S_AUTH_CONTEXT) (as kubernetes.core; AWX's Kubernetes credential sets it).
    type: str
  host:
    description: API server URL, overriding the kubeconfig's. Defaults to E(K8S_AUTH_HOST) (as kubernetes.core; AWX's Kubernetes credential sets it).
    type: str
  api_key:
    description: Bearer token, overriding the kubeconfig's. Defaults to E(K8S_AUTH_API_KEY) (as kubernetes.core; AWX's Kubernetes credential sets it).
    type: str
  ca_cert:
    description: CA bundle that verifies the API server. Defaults to E(K8S_AUTH_SSL_CA_CERT) (as kubernetes.core; AWX's Kubernetes credential sets it).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description: Client certificate file. Defaults to E(K8S_AUTH_CERT_FILE) (as kubernetes.core; AWX's Kubernetes credential sets it).
    type: path
    aliases: [cert_file]
  client_key:
    description: Client key file. Defaults to E(K8S_AUTH_KEY_FILE) (as kubernetes.core; AWX's Kubernetes credential sets it).
    type: path
    aliases: [key_file]
  validate_certs:
    description: Verify the API server's certificate. Defaults to E(K8S_AUTH_VERIFY_SSL) (as kubernetes.core; AWX's Kubernetes credential sets it).
    type: bool
    aliases: [verify_ssl]
  impersonate_user:
    description:
      - User to act as (the Impersonate-User header on every request), replacing the kubeconfig
        user's C(as) as kubectl's C(--as) does; the caller needs the C(impersonate) permission.
        Defaults to E(K8S_AUTH_IMPERSONATE_USER) (as kubernetes.core).
      - A kubeconfig user's C(as), C(as-uid), C(as-groups) and C(as-user-extra) are always sent,
        exactly as kubectl sends them.
    type: str
  impersonate_groups:
    description:
      - Groups to act as, replacing the kubeconfig user's C(as-groups) as C(--as-group) does;
        only together with a user to impersonate. Defaults to E(K8S_AUTH_IMPERSONATE_GROUPS)
        (comma-separated, as kubernetes.core).
    type: list
    elements: str
  request_timeout:
    description:
      - Seconds one request may take, retries included; a server that cannot be reached within it
        fails the task (and every later request of the task at once), naming the cluster.
    type: float
    default: 30
  permissions_file:
    description:
      - The RBAC file that lists what the caller needs (the roles pass their C(files/rbac.yml));
        a request the server refuses with 403 names it.
    type: str
"""
