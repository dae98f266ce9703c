"""`kafkalab up | down | status | logs | reset | node | lab | watch`: the local broker (and the lag
watcher) from a shell."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .broker.cluster import Cluster
from .broker.jars import JarsError
from .broker.java import JavaError
from .broker.local import BrokerError, LocalBroker
from .broker.secure import SecureBroker

PROFILES = {"single": LocalBroker, "secure": SecureBroker, "cluster": Cluster}


def _make(profile: str, home, port=None) -> LocalBroker | Cluster:
    if profile == "cluster":
        if port is not None:
            raise BrokerError("--port is for the single and secure profiles; the cluster's nodes use "
                              "19092, 29092 and 39092 unless taken")
        return Cluster(home=home)
    return PROFILES[profile](home=home, port=port)


def _running(home) -> list[LocalBroker | Cluster]:
    """The profiles with a broker (or a cluster node) running under this home."""
    return [b for b in (_make(name, home) for name in PROFILES) if b.alive()]


def _broker(args) -> LocalBroker | Cluster:
    """--profile's broker; without it, the single profile (up, lab, reset, watch, site, doctor)."""
    return _make(args.profile or "single", args.home, getattr(args, "port", None))


def _running_or_chosen(args, verb: str) -> LocalBroker | Cluster:
    """`down`, `logs` without --profile: the profile that is running (one only), else the single one."""
    if args.profile:
        return _broker(args)
    running = _running(args.home)
    if len(running) > 1:
        names = ", ".join(b.profile for b in running)
        raise BrokerError(f"{len(running)} lab brokers are running ({names}): say which to {verb} with "
                          f"--profile {running[0].profile}" + (", or --all" if verb == "stop" else ""))
    return running[0] if running else _broker(args)


def cmd_up(args) -> int:
    status = _broker(args).up(timeout=args.timeout)
    print(status["bootstrap"])
    return 0


def _stop(broker) -> str:
    pids = [n["pid"] for n in broker.status()["nodes"] if n["alive"]]
    if not broker.down():
        return f"no {broker.profile} broker running"
    what = f"{broker.profile} broker" if broker.profile != "cluster" else f"cluster node{'s' * (len(pids) > 1)}"
    return f"stopped {what} (pid {', '.join(map(str, pids))})"


def cmd_down(args) -> int:
    if args.all:
        if args.profile:
            raise BrokerError("--all stops every profile: leave out --profile")
        running = _running(args.home)
        for broker in running:
            print(_stop(broker))
        if not running:
            print("no broker running")
        return 0
    broker = _running_or_chosen(args, "stop")
    print(_stop(broker) if (args.profile or broker.alive()) else "no broker running")
    return 0


def cmd_node(args) -> int:
    cluster = Cluster(home=args.home)
    if args.action == "start":
        cluster.start_node(args.id, timeout=args.timeout)
        print(f"node {args.id} started")
    else:
        done = cluster.stop_node(args.id) if args.action == "stop" else cluster.kill_node(args.id)
        print(f"node {args.id} {'stopped' if args.action == 'stop' else 'killed'}" if done
              else f"node {args.id} was not running")
    return 0


def _watch_line(watcher: dict) -> str:
    if watcher["running"]:
        return (f"running (pid {watcher['pid']}): {', '.join(watcher['groups'])} every {watcher['interval']:g} s "
                f"at {watcher['bootstrap']}, into {watcher['db']}")
    stale = f" (pid file of pid {watcher['stale_pid']}, which is gone)" if watcher.get("stale_pid") else ""
    return f"not running{stale}; history in {watcher['db']}"


def _java() -> dict:
    """The Java `up` would run the broker on, and where it was found (or why there is none)."""
    from .broker.java import find_java
    try:
        return find_java().as_dict()
    except JavaError as e:
        return {"error": str(e).splitlines()[0]}


def _print_status(status: dict) -> None:
    if status["profile"] == "cluster":
        print(f"profile:   cluster ({status['alive_nodes']} of {len(status['nodes'])} nodes alive)\n"
              f"bootstrap: {status['bootstrap'] or '-'}\ndata:      {status['data_dir']}")
        for node in status["nodes"]:
            state = f"running (pid {node['pid']})" if node["alive"] else "stopped"
            print(f"node {node['id']}:    {state} on port {node['port'] or '-'}")
    else:
        node = status["nodes"][0]
        state = f"running (pid {node['pid']})" if status["running"] else "stopped"
        print(f"profile:   {status['profile']}\nstate:     {state}\n"
              f"bootstrap: {status['bootstrap'] or '-'}\ndata:      {status['data_dir']}\n"
              f"log:       {status['log_file']}")
        if "protocol" in status:
            print(f"protocol:  {status['protocol']} ({', '.join(status['mechanisms'])})\n"
                  f"CA file:   {status['ca_file']}\n"
                  f"users:     {', '.join(u['name'] for u in status['users'])} "
                  f"(passwords in {status['users_file']})")
    if status.get("running_java"):
        print(f"java:      {status['running_java']}")


def cmd_status(args) -> int:
    """Without --profile: every running profile (or the single one's state when none runs)."""
    from .laghistory import watch_status
    brokers = [_broker(args)] if args.profile else (_running(args.home) or [_broker(args)])
    statuses = [b.status() for b in brokers]
    watcher = watch_status(args.home)
    java = _java()
    if args.json:
        print(json.dumps({**statuses[0], "running_profiles": [s["profile"] for s in statuses if s["running"]
                                                               or s.get("alive_nodes")],
                          "java": java, "lag_watch": watcher}, indent=1))
    else:
        for i, status in enumerate(statuses):
            if i:
                print()
            _print_status(status)
        where = f"{java['error']}" if "error" in java else f"Java {java['full_version'] or java['version']} " \
            f"from {java['source']} ({java['path']})"
        print(f"\nup uses:   {where}\nlag watch: {_watch_line(watcher)}")
    return 0 if any(s["running"] for s in statuses) else 3


def cmd_watch(args) -> int:
    from .laghistory import WatchError, stop_watch, watch, watch_status
    if args.stop:
        if args.groups:
            print("kafkalab: --stop takes no groups (it stops the watcher of every group)", file=sys.stderr)
            return 2
        pid = stop_watch(args.home)
        print(f"lag watcher stopped (pid {pid}); the history stays" if pid else "no lag watcher running")
        return 0
    if not args.groups:
        watcher = watch_status(args.home)
        print(f"lag watch: {_watch_line(watcher)}")
        return 0 if watcher["running"] else 3
    if args.profile == "secure":
        connection = SecureBroker(home=args.home).client_config("admin")
    elif args.profile == "cluster":
        connection = {"bootstrap_servers": Cluster(home=args.home).bootstrap}
    else:
        connection = {}    # client_config(): KAFKA_BOOTSTRAP_SERVERS (and KAFKA_SECURITY_*), else the lab broker
    try:
        w = watch(args.groups, args.interval, home=args.home, **connection)
    except ValueError as e:
        print(f"kafkalab: {e}", file=sys.stderr)
        return 2
    except WatchError as e:
        print(f"kafkalab: {e}", file=sys.stderr)
        return 1
    print(f"lag watcher {w.change}: pid {w.pid}, {', '.join(w.groups)} every {w.interval:g} s at {w.bootstrap}\n"
          f"history: {w.db} (kafkalab.lag_history(group, since='-1h')); stop: kafkalab watch --stop")
    return 0


def cmd_logs(args) -> int:
    broker = _running_or_chosen(args, "show")
    for line in broker.log_tail(args.lines):
        print(line)
    if args.follow:
        with open(broker.log_file) as f:
            f.seek(0, os.SEEK_END)
            try:
                while True:
                    line = f.readline()
                    if line:
                        sys.stdout.write(line)
                        sys.stdout.flush()
                    else:
                        time.sleep(0.3)
            except KeyboardInterrupt:
                return 0
    return 0


def cmd_reset(args) -> int:
    broker = _broker(args)
    if args.topics:
        return _reset_topics(args)
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"refusing to wipe {broker.dir} without --yes", file=sys.stderr)
            return 2
        answer = input(f"Wipe every topic and record under {broker.dir}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing wiped")
            return 1
    broker.reset()
    print(f"wiped {broker.dir}")
    return 0


def _reset_topics(args) -> int:
    """Delete every topic and consumer group of the local lab broker, keeping it running, so an
    exercise can start over. Never aimed at KAFKA_BOOTSTRAP_SERVERS: a shared cluster is not a lab."""
    from kafka import KafkaAdminClient

    from .config import BOOTSTRAP_TIMEOUT_MS, require_reachable
    broker = _broker(args)
    if not broker.alive():
        print(f"no {broker.profile} lab broker is running under {broker.dir}", file=sys.stderr)
        return 1
    config = (broker.client_config("admin") if isinstance(broker, SecureBroker)
              else {"bootstrap_servers": broker.bootstrap})
    config["bootstrap_timeout_ms"] = BOOTSTRAP_TIMEOUT_MS
    require_reachable(config["bootstrap_servers"])
    with KafkaAdminClient(**config) as admin:
        topics = sorted(t for t in admin.list_topics() if not t.startswith("_"))
        groups = sorted(g["group_id"] for g in admin.list_groups())
        if not topics and not groups:
            print("no lab topics or groups")
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                print(f"refusing to delete {len(topics)} topics and {len(groups)} groups without --yes",
                      file=sys.stderr)
                return 2
            answer = input(f"Delete {len(topics)} topics and {len(groups)} consumer groups at "
                           f"{config['bootstrap_servers']}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
        if groups:
            admin.delete_groups(groups)
        if topics:
            admin.delete_topics(topics)
    print(f"deleted {len(topics)} topics and {len(groups)} consumer groups")
    return 0


def cmd_student_copies(args) -> int:
    from .workshop import make_student_copies
    report = make_student_copies(Path(args.notebooks), Path(args.out))
    for name, removed in report.items():
        print(f"{name}: {removed} solution(s) removed")
    print(f"student copies in {args.out}")
    return 0


def cmd_site(args) -> int:
    from .config import ensure_broker
    from .site import build
    ensure_broker()           # notebooks 08 and 15 start the secure broker and the cluster themselves
    folder = Path(args.notebooks)
    paths = [folder / (n if n.endswith(".ipynb") else n + ".ipynb") for n in args.names] or \
        sorted(folder.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    report = build(paths, Path(args.out))
    for name, charts in report.items():
        print(f"{name}: {charts} interactive chart(s)")
    print(f"site: {Path(args.out) / 'index.html'}")
    return 0


def cmd_doctor(args) -> int:
    from .doctor import report, run_checks
    return report(run_checks(home=args.home))


def cmd_lab(args) -> int:
    _broker(args).up(timeout=args.timeout)
    notebook = Path(args.notebooks) / "00_start_here.ipynb"
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={args.notebooks}",
            "--ip=127.0.0.1", f"--port={args.jupyter_port}"]
    if notebook.exists():
        argv.append(str(notebook.resolve()))
    if args.no_browser:
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # containers and CI machines often run as root
    print("kafkalab: starting JupyterLab (Ctrl-C stops it; `kafkalab down` stops the broker)")
    os.execv(sys.executable, argv)
    return 0  # not reached: execv replaces this process


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kafkalab", description=__doc__)
    p.add_argument("--home", help="where brokers keep state and data "
                                  "(default: $KAFKALAB_HOME or ~/.local/share/kafkalab)")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, help):
        sp = sub.add_parser(name, help=help)
        sp.set_defaults(func=func)
        sp.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="single (the default): one KRaft node, PLAINTEXT on 9092; "
                             "secure: SASL_SSL on 9094 with SCRAM/PLAIN users and ACLs; "
                             "cluster: three nodes on 19092, 29092, 39092. "
                             "down, status and logs without it act on the profile that is running")
        return sp

    up = add("up", cmd_up, "start the broker; returns once a produce/consume round trip works")
    up.add_argument("--port", type=int, help="client port (default 9092, else a free one; 0: any)")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    dn = add("down", cmd_down, "stop the running broker (data is kept)")
    dn.add_argument("--all", action="store_true", help="stop every profile that is running")
    st = add("status", cmd_status, "is the broker running, and where (exit 3 if not)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    lg = add("logs", cmd_logs, "show the broker log")
    lg.add_argument("-n", "--lines", type=int, default=50)
    lg.add_argument("-f", "--follow", action="store_true")
    rs = add("reset", cmd_reset, "stop the broker and wipe all its data")
    rs.add_argument("--yes", action="store_true", help="do not ask")
    rs.add_argument("--topics", action="store_true",
                    help="only delete the lab's topics and consumer groups (the broker keeps running)")
    add("doctor", cmd_doctor, "check Python, Java, ports, disk, memory and the broker; print fixes")
    sc = add("student-copies", cmd_student_copies, "write the notebooks with their solutions removed")
    sc.add_argument("--notebooks", default="notebooks")
    sc.add_argument("--out", default="student")
    nd = sub.add_parser("node", help="stop (SIGTERM), kill (SIGKILL) or start one node of the cluster")
    nd.set_defaults(func=cmd_node)
    nd.add_argument("action", choices=("stop", "kill", "start"))
    nd.add_argument("id", type=int, help="node id: 1, 2 or 3")
    nd.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a started node")
    site = add("site", cmd_site, "execute the notebooks and write a static site of them (charts stay interactive)")
    site.add_argument("names", nargs="*", help="notebooks to include (default: all)")
    site.add_argument("--notebooks", default="notebooks")
    site.add_argument("--out", default="site")
    wt = add("watch", cmd_watch, "record consumer groups' lag into SQLite from a background process, until --stop")
    wt.add_argument("groups", nargs="*", metavar="GROUP",
                    help="groups to sample (added to those a running watcher samples); none: show the watcher")
    wt.add_argument("--interval", type=float, help="seconds between samples (default 5, or the running watcher's)")
    wt.add_argument("--stop", action="store_true", help="stop the watcher (the history stays)")
    lab = add("lab", cmd_lab, "start the broker and JupyterLab on the notebooks")
    lab.add_argument("--port", type=int)
    lab.add_argument("--timeout", type=float, default=90.0)
    lab.add_argument("--notebooks", default="notebooks")
    lab.add_argument("--jupyter-port", type=int, default=8888,
                     help="JupyterLab's port (the next free one if taken)")
    lab.add_argument("--no-browser", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (BrokerError, JavaError, JarsError) as e:
        print(f"kafkalab: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
