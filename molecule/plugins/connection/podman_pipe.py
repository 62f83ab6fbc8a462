"""The scenarios' connection: containers.podman.podman with Ansible's pipelining.

containers.podman.podman runs a module in five or six podman calls (a mount, `echo ~`, mkdir,
chmod, the run, rm), because it starts `podman exec` without `-i`: a module sent on stdin never
arrives, so the plugin declares no pipelining (ansible/ansible#67004). With `-i` when there is
data for stdin, a module runs in one `podman exec`, as it does over SSH on a real fleet with
the project's ansible.cfg (`pipelining = true`). The container is mounted only when a file is
copied, not at every task. A container that is not running is a host that does not answer
(AnsibleConnectionFailure, UNREACHABLE), as SSH reports a dead node: the collection's plugin
gets there through its failed mkdir, a pipelined task would otherwise see a module failure.
Everything else is the collection's plugin.

Used by every scenario through molecule.yml (`ansible_connection: podman_pipe`).
"""

from __future__ import annotations

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection import ensure_connect
from ansible_collections.containers.podman.plugins.connection import podman

DOCUMENTATION = podman.DOCUMENTATION.replace("name: podman", "name: podman_pipe", 1)
# podman's words for a container that is stopped, killed or gone.
_DOWN = (b"can only create exec sessions on running containers", b"no such container")


class Connection(podman.Connection):
    transport = "podman_pipe"
    has_pipelining = True

    def _connect(self):
        # The collection mounts the container here, for put_file; see put_file.
        super(podman.Connection, self)._connect()
        self._connected = True

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        if in_data is None:
            rc, out, err = super().exec_command(cmd, in_data, sudoable)
        else:
            super(podman.Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
            args = podman.shlex.split(podman.to_native(cmd, errors="surrogate_or_strict"))
            user = ["--user", self.user] if self.user else []
            rc, out, err = self._podman(["exec", "-i", *user], args, in_data)
        if rc != 0 and any(words in err.lower() for words in _DOWN):
            raise AnsibleConnectionFailure(podman.to_native(err.strip()))
        return rc, out, err

    def put_file(self, in_path, out_path):
        if self._mount_point is None:
            podman.Connection._connect(self)
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        if self._mount_point is None:
            podman.Connection._connect(self)
        super().fetch_file(in_path, out_path)
