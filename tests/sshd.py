"""A throwaway OpenSSH server on 127.0.0.1 playing a device: its own host key, one user key, a client config
that uses them. tests/test_remote.py and benchmarks/remote_device.py start it."""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path


class NoSshd(RuntimeError):
    """sshd is not installed here or would not start (the reason is the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@contextmanager
def throwaway_sshd(d: Path, env: dict[str, str] | None = None):
    """Yields (base URL ssh://USER@127.0.0.1:PORT, client config path); `d` holds the keys (also other_key, one
    the server does not accept). `env` is set in every session (sshd's SetEnv): a device home of the test's."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).is_file() or not shutil.which("ssh-keygen"):
        raise NoSshd("no OpenSSH server here (apt-get install openssh-server; .ci/run installs it)")
    for key in ("host_key", "user_key", "other_key"):
        keygen(d / key)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        f"PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {d}/sshd.pid\n"
        + "".join(f"SetEnv {k}={v}\n" for k, v in (env or {}).items()))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # the privilege-separation dir sshd insists on
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                raise NoSshd(f"sshd did not start: {proc.stderr.read().decode()[-300:]}")
            time.sleep(0.05)
        config = d / "ssh_config"
        config.write_text(f"Host *\n  IdentityFile {d}/user_key\n  IdentitiesOnly yes\n"
                          f"  UserKnownHostsFile {d}/known_hosts\n")
        yield f"ssh://{getpass.getuser()}@127.0.0.1:{port}", config
    finally:
        proc.terminate()
        proc.wait(10)
