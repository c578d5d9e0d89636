"""A throwaway single-node SLURM cluster (Debian's slurm-wlm + munge, run as root) for tests.

`slurm_cluster()` starts `munged`, `slurmctld` and `slurmd` with every key, socket, pid, log,
state and spool file in a fresh temp folder, waits until `sinfo` shows the node idle, yields a
`SlurmCluster` and tears everything down by pid file in a `finally`. The node has this
machine's CPUs, ~80 % of its memory and one fake GPU (`gres.conf`: `File=/dev/null`) that SLURM
schedules like a real one. When the cluster cannot be had (not root, binaries missing, daemons
not idle within the timeout) it calls `pytest.skip` with the reason and the daemon log tails.

Clients find the cluster through `SLURM_CONF` (in `SlurmCluster.env`; jobs inherit it, sbatch
exports the environment). One client loses it: snakemake-executor-plugin-slurm-jobstep runs
each job's step with `srun` after removing every `SLURM_*` variable, so `srun` would look for
the compiled-in /etc/slurm/slurm.conf (a real site has one there). Rather than writing that
machine-wide path, `SlurmCluster.env` puts a folder first on PATH whose `srun` sets
`SLURM_CONF` and execs the real one; two test clusters can then run side by side.

The temp folder records its owner (pid and start time): a later cluster stops the daemons of
folders whose owner died without its `finally` (e.g. pytest killed with SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")
TEMP_DIR = Path("/tmp")  # not $TMPDIR: unix socket paths must stay short
TEMP_PREFIX = "ncslurm-"
PARTITION = "main"


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    host: str
    cpus: int
    memory_mb: int
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: int = 30) -> str:
        result = subprocess.run(
            list(args), env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def jobs(self, name: str | None = None) -> list[dict[str, str]]:
        """Every job slurmctld still knows (finished ones stay for MinJobAge), as
        `scontrol show job` records; `name` filters on the job name."""
        out = self.run("scontrol", "--oneliner", "show", "job", check=False)
        records = [parse_scontrol(line) for line in out.splitlines() if "JobId=" in line]
        return [r for r in records if name is None or r.get("JobName") == name]

    def job(self, job_id: str) -> dict[str, str]:
        return parse_scontrol(self.run("scontrol", "--oneliner", "show", "job", job_id))

    def log_tails(self, lines: int = 25) -> str:
        return log_tails(self.root, lines)


def parse_scontrol(line: str) -> dict[str, str]:
    """`scontrol --oneliner show job` output as a dict. Values may contain spaces only in
    the last fields we never read (e.g. Command=), so splitting on `key=` is enough."""
    record = {}
    for match in re.finditer(r"(\S+?)=(.*?)(?=\s+\S+?=|$)", line.strip()):
        record[match.group(1)] = match.group(2)
    return record


def log_tails(root: Path, lines: int = 25) -> str:
    parts = []
    for name in DAEMONS:
        path = root / "log" / f"{name}.log"
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name}.log (last {len(text)} lines) ---\n" + "\n".join(text))
    return "\n".join(parts) or "(no daemon logs)"


def _which(name: str) -> str | None:
    """A binary on PATH, or in the sbin folders a non-login PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node_hardware(cpus: int) -> str:
    """`slurmd -C`'s topology (Boards/Sockets/Cores/Threads) or just CPUs=N."""
    try:
        command = [_which("slurmd") or "slurmd", "-C"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    line = next((x for x in out.splitlines() if x.startswith("NodeName=")), "")
    keep = [
        f"{key}={value}"
        for key, value in re.findall(r"(\w+)=(\S+)", line)
        if key in {"CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore"}
    ]
    return " ".join(keep) if keep else f"CPUs={cpus}"


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still answers kill(0): reap it if it is ours
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _stop_pid(pid: int, timeout: float = 10) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        _pid_alive(pid)


def _read_pid(path: Path, name: str) -> int | None:
    """The pid in `path` if that process is still `name` (guards against pid reuse)."""
    try:
        pid = int(path.read_text().split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm == name[:15] else None


def _cluster_conf(root: Path, host: str, cpus: int, memory_mb: int) -> str:
    node = f"{_node_hardware(cpus)} RealMemory={memory_mb} Gres=gpu:1"
    return f"""\
# single-node test cluster written by tests/slurm_cluster.py
ClusterName=ncrepro
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={root}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
GresTypes=gpu
ReturnToService=2
# finished jobs stay visible to squeue/scontrol (the plugin's squeue status checks need it)
MinJobAge=600
SchedulerType=sched/backfill
NodeName={host} NodeAddr=127.0.0.1 {node} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_stamp() -> str:
    return f"{os.getpid()} {_start_time(os.getpid())}"


def _stop_daemons(root: Path, procs: dict | None = None) -> None:
    """Stop slurmd, slurmctld and munged of `root` by their pid files (and our handles)."""
    procs = procs or {}
    for name in ("slurmd", "slurmctld", "munged"):
        pids = {_read_pid(root / "run" / f"{name}.pid", name)}
        if name in procs:
            pids.add(procs[name].pid)
        for pid in pids - {None}:
            _stop_pid(pid)
        if name in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                procs[name].wait(timeout=5)


def _reap_stale() -> None:
    """Stop the daemons of earlier clusters whose owner died and remove their folders."""
    for root in TEMP_DIR.glob(f"{TEMP_PREFIX}*"):
        try:
            pid, started = (root / "owner").read_text().split()
        except (OSError, ValueError):
            continue
        if _start_time(int(pid)) == started:
            continue  # its owner is alive: a cluster in use
        if _read_pid(root / "run" / "slurmctld.pid", "slurmctld"):
            _cancel_jobs({**os.environ, "SLURM_CONF": str(root / "slurm.conf")})
        _stop_daemons(root)
        shutil.rmtree(root, ignore_errors=True)


def _wait_idle(cluster: SlurmCluster, procs: dict, timeout: float) -> str | None:
    """None once the node is idle, else why not."""
    deadline = time.monotonic() + timeout
    state = "no answer"
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                return f"{name} exited with status {proc.returncode}"
        result = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%N %t"],
            env=cluster.env,
            capture_output=True,
            text=True,
            timeout=10,
        )
        state = (result.stdout + result.stderr).strip() or "empty sinfo"
        if result.returncode == 0 and re.search(rf"^{re.escape(cluster.host)} idle$", state, re.M):
            return None
        time.sleep(0.5)
    return f"node not idle after {timeout:.0f} s (sinfo: {state})"


@contextlib.contextmanager
def slurm_cluster(timeout: float = 30) -> Iterator[SlurmCluster]:
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root (SlurmUser=root, munged, slurmd)")
    missing = [b for b in (*DAEMONS, *CLIENTS) if _which(b) is None]
    if missing:
        pytest.skip(
            f"SLURM/munge binaries missing: {', '.join(missing)} (apt-get install slurm-wlm munge)"
        )

    host = socket.gethostname().split(".")[0]
    cpus = len(os.sched_getaffinity(0))
    memory_mb = int(_memory_mb() * 0.8)
    _reap_stale()
    root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=TEMP_DIR))
    (root / "owner").write_text(_owner_stamp())
    conf = root / "slurm.conf"
    srun = root / "bin" / "srun"
    path = f"{srun.parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": path}
    for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_"))]:
        if var != "SLURM_CONF":
            del env[var]  # e.g. when the tests themselves run inside a SLURM job
    cluster = SlurmCluster(root, conf, host, cpus, memory_mb, env)

    procs: dict[str, subprocess.Popen] = {}
    logs = []
    try:
        root.chmod(0o755)  # munged wants its socket reachable by every client
        for sub in ("munge", "state", "spool", "run", "log", "bin"):
            (root / sub).mkdir(mode=0o755)
        srun.write_text(
            "#!/bin/sh\n# the jobstep plugin drops SLURM_CONF before calling srun\n"
            f'export SLURM_CONF={conf}\nexec {_which("srun")} "$@"\n'
        )
        srun.chmod(0o755)
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        conf.write_text(_cluster_conf(root, host, cpus, memory_mb))
        (root / "gres.conf").write_text(f"NodeName={host} Name=gpu File=/dev/null\n")
        (root / "plugstack.conf").write_text("")
        commands = {
            "munged": [
                _which("munged"),
                "--foreground",
                "--force",
                f"--socket={root}/munge/munge.socket",
                f"--key-file={key}",
                f"--pid-file={root}/run/munged.pid",
                f"--log-file={root}/log/munged.log",
                f"--seed-file={root}/munge/munged.seed",
            ],
            "slurmctld": [_which("slurmctld"), "-D", "-i", "-f", str(conf)],
            "slurmd": [_which("slurmd"), "-D", "-f", str(conf)],
        }
        for name, command in commands.items():
            log = open(root / "log" / f"{name}.out", "w")  # noqa: SIM115 (closed in finally)
            logs.append(log)
            procs[name] = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C of pytest reaches the finally, not them
            )
            if name == "munged":
                sock = root / "munge" / "munge.socket"
                deadline = time.monotonic() + 10
                while not sock.exists() and procs[name].poll() is None:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
        why = _wait_idle(cluster, procs, timeout)
        if why:
            out = "\n".join(
                f"--- {p.name} ---\n{p.read_text(errors='replace')[-1500:]}"
                for p in sorted((root / "log").glob("*.out"))
                if p.stat().st_size
            )
            pytest.skip(f"SLURM test cluster did not come up: {why}\n{log_tails(root)}\n{out}")
        yield cluster
    finally:
        _teardown(cluster, procs)
        for log in logs:
            log.close()
        shutil.rmtree(root, ignore_errors=True)


def _cancel_jobs(env: dict[str, str], timeout: float = 15) -> None:
    """scancel every job of the cluster `env` points at; wait until none is running."""
    with contextlib.suppress(Exception):
        subprocess.run(["scancel", "--user=root"], env=env, capture_output=True, timeout=10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = subprocess.run(
                ["squeue", "--noheader", "--states=RUNNING,COMPLETING"],
                env=env,
                capture_output=True,
                text=True,
                timeout=10,
            )
            if running.returncode != 0 or not running.stdout.strip():
                break
            time.sleep(0.5)


def _teardown(cluster: SlurmCluster, procs: dict) -> None:
    """Cancel leftover jobs, then stop slurmd, slurmctld and munged."""
    if procs.get("slurmctld") and procs["slurmctld"].poll() is None:
        _cancel_jobs(cluster.env)
    _stop_daemons(cluster.root, procs)
