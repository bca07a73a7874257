"""`scripts/image --check`: checks the image scripts/image built, here, with podman and loopback only.

1. Its filesystem, without running a container: smo and smo-admin run under chroot as uid 10001,
   every library resolves, user, entrypoint, ports, the CA bundle.
2. podman runs it (if containers cannot run here, the exact error is printed and the check stops
   after step 1, exiting 2) against a throwaway PostgreSQL (scripts/dev-db on a free port) and
   `smo sim` (from the image): `migrate`; the API's /healthz and /readyz, timing how long after the
   container starts /readyz answers; a worker that runs jobs end to end (`smo cluster sync --wait`,
   `smo graph deploy examples/graphs/hello.yaml --wait`, run by the image's own CLI); with helm in
   the image, a graph of Helm charts (examples/graphs/shop.yaml, the charts pushed to the registry
   below) installed by that helm, else the worker's warning that helm is missing; `smo-admin stats`;
   SIGTERM stops the worker and the API with exit 0.
3. The image is pushed to a docker-registry on loopback; charts/smo is installed into the sim by
   Helm's engine (scripts/helm) with that reference and with its database URL and Karmada
   kubeconfig in Secrets, as in production. Then every workload Helm created (the migration hook
   Job, the api, worker and scheduler Deployments) is run with podman as a kubelet would: the
   image pulled from the registry by the chart's reference, the chart's args, env (Secrets
   resolved), volumes, user, read-only root and dropped capabilities; the API's own probes are
   polled, and a graph (with helm in the image, the Helm-chart one too) is deployed through that
   stack.

Prints the figures (image size, compressed size, API ready time) and exits non-zero on the first
failure, with the container's log.
"""

import argparse
import base64
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
KUBECTL = os.path.join(TARGET, "py", "bin", "kubectl")


class CheckFailed(Exception):
    pass


def step(text):
    print(f"==> {text}", flush=True)


def ok(text):
    print(f"    ok: {text}", flush=True)


def run(args, check=True, timeout=300, env=None):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise CheckFailed(f"`{' '.join(args)}` did not finish in {timeout} s:\n{e.stdout or ''}{e.stderr or ''}")
    if check and r.returncode != 0:
        raise CheckFailed(f"`{' '.join(args)}` exited {r.returncode}:\n{r.stdout}{r.stderr}".rstrip())
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, timeout=2.0):
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError):
        return 0, ""


def wait_http(url, what, seconds=60, want=200):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, body = http(url, timeout=1)
        if status == want:
            return body
        time.sleep(0.05)
    raise CheckFailed(f"{what}: {url} did not answer {want} within {seconds} s")


class Podman:
    """podman with the flags this machine needs, and the containers started, for cleanup."""

    def __init__(self, prefix):
        self.global_flags = os.environ.get("SMO_IMAGE_RUNTIME", "").split()
        self.run_flags = []
        self.prefix = prefix
        self.names = []

    def cmd(self, *args):
        return ["podman", *self.global_flags, *args]

    def probe(self, image):
        """Finds flags under which a container runs; returns the errors met on the way."""
        errors = []
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
        unlimited = resource.RLIM_INFINITY
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nofile = 1048576 if nofile == unlimited else nofile
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nproc = pid_max if nproc == unlimited else min(nproc, pid_max)
        # As root, podman gives containers nofile and nproc limits of 1048576; raising a hard limit
        # needs CAP_SYS_RESOURCE, which a sandbox may withhold. Then the host's own limits are used
        # (nproc at most kernel.pid_max: podman lowers its own limit to that, and its children
        # cannot raise it back).
        candidates = [[], [f"--ulimit=nofile={nofile}:{nofile}", f"--ulimit=nproc={nproc}:{nproc}"]]
        for flags in candidates:
            r = run(self.cmd("run", "--rm", "--network=host", *flags, image, "--version"), check=False)
            if r.returncode == 0:
                self.run_flags = flags
                return errors, r.stdout.strip()
            errors.append((" ".join(self.cmd("run", "--rm", "--network=host", *flags, image, "--version")),
                           (r.stderr or r.stdout).strip()))
        return errors, None

    def name(self, role):
        n = f"{self.prefix}-{role}"
        self.names.append(n)
        return n

    def run(self, image, args, name=None, detach=False, extra=(), check=True, timeout=300):
        flags = ["--network=host", *self.run_flags, *extra]
        if name:
            flags.append(f"--name={name}")
        flags.append("-d" if detach else "--rm")
        return run(self.cmd("run", *flags, image, *args), check=check, timeout=timeout)

    def logs(self, name, lines=30):
        r = run(self.cmd("logs", "--tail", str(lines), name), check=False)
        return (r.stdout + r.stderr).rstrip()

    def inspect(self, name, fmt):
        return run(self.cmd("inspect", "--format", fmt, name)).stdout.strip()

    def stop(self, name, seconds=30):
        t = time.monotonic()
        run(self.cmd("stop", "-t", str(seconds), name), check=False, timeout=seconds + 30)
        return time.monotonic() - t, self.inspect(name, "{{.State.ExitCode}}")

    def dump_logs(self):
        for n in self.names:
            if run(self.cmd("container", "exists", n), check=False).returncode == 0:
                state = self.inspect(n, "{{.State.Status}} {{.State.ExitCode}}")
                print(f"--- {n} ({state}), last lines of its log:\n{self.logs(n, 15)}", file=sys.stderr)

    def cleanup(self):
        for n in reversed(self.names):
            run(self.cmd("rm", "-f", "-t", "5", n), check=False, timeout=60)
        self.names = []


# --- 1. the filesystem --------------------------------------------------------------------------


def check_filesystem(image):
    step(f"filesystem of {image} (no container)")
    config = json.loads(run(["podman", "image", "inspect", image]).stdout)[0]
    cfg = config["Config"]
    facts = {
        "User": (cfg.get("User"), "10001:10001"),
        "Entrypoint": (cfg.get("Entrypoint"), ["smo"]),
        "Cmd": (cfg.get("Cmd"), ["run", "--role", "all"]),
        "WorkingDir": (cfg.get("WorkingDir"), "/home/smo"),
        "ExposedPorts": (sorted(cfg.get("ExposedPorts", {})), ["8080/tcp", "9464/tcp"]),
    }
    for key, (got, want) in facts.items():
        if got != want:
            raise CheckFailed(f"image config {key} is {got!r}, expected {want!r}")
    ok(f"user 10001:10001, entrypoint {cfg['Entrypoint']} {cfg['Cmd']}, ports 8080 9464, env {cfg.get('Env')}")
    labels = cfg.get("Labels") or {}
    mnt = run(["podman", "image", "mount", image]).stdout.strip()
    try:
        for b in ["smo", "smo-admin"]:
            path = os.path.join(mnt, "usr/local/bin", b)
            if not os.access(path, os.X_OK):
                raise CheckFailed(f"/usr/local/bin/{b} is missing or not executable")
            out = run(["chroot", "--userspec=10001:10001", mnt, f"/usr/local/bin/{b}", "--version"]).stdout.strip()
            # What ldd does: the image's own dynamic loader (the binary's ELF interpreter) lists what
            # it would load, and from where.
            interp = run(["readelf", "--string-dump=.interp", path]).stdout.split()[-1]
            libs = run(["chroot", mnt, interp, "--list", f"/usr/local/bin/{b}"]).stdout
            if "not found" in libs:
                raise CheckFailed(f"{b}: unresolved libraries:\n{libs}")
            ok(f"chroot --userspec=10001:10001: `{b} --version` -> {out}; libraries: "
               + ", ".join(line.split()[0] for line in libs.splitlines() if "=>" in line))
        with open(os.path.join(mnt, "etc/passwd")) as f:
            if "smo:x:10001:10001:" not in f.read():
                raise CheckFailed("/etc/passwd has no smo user with uid 10001")
        home = os.stat(os.path.join(mnt, "home/smo"))
        tmp = os.stat(os.path.join(mnt, "tmp"))
        if (home.st_uid, home.st_gid) != (10001, 10001) or oct(tmp.st_mode & 0o7777) != "0o1777":
            raise CheckFailed("/home/smo must belong to 10001 and /tmp be 1777")
        with open(os.path.join(mnt, "etc/ssl/certs/ca-certificates.crt")) as f:
            certs = f.read().count("BEGIN CERTIFICATE")
        if certs < 100:
            raise CheckFailed(f"the CA bundle holds {certs} certificates")
        packages = sorted(os.listdir(os.path.join(mnt, "var/lib/dpkg/status.d")))
        shell = any(os.path.lexists(os.path.join(mnt, p)) for p in ["usr/bin/sh", "usr/bin/bash"])
        ok(f"smo user 10001, /home/smo 10001, /tmp 1777, {certs} CA certificates, no shell: {not shell}, "
           f"Debian packages: {' '.join(packages)}")
        helm = os.path.join(mnt, "usr/local/bin/helm")
        if labels.get("io.smo.helm", "none") != "none":
            out = run(["chroot", "--userspec=10001:10001", mnt, "/usr/local/bin/helm", "version"],
                      env=dict(os.environ, HOME="/home/smo")).stdout.strip()
            ok(f"helm ({labels['io.smo.helm']}): `helm version` -> {out}")
        elif os.path.exists(helm):
            raise CheckFailed("labelled io.smo.helm=none but /usr/local/bin/helm exists")
        else:
            ok("no helm (io.smo.helm=none): Helm-chart services need SMO_HELM_BINARY")
    finally:
        run(["podman", "image", "unmount", image], check=False)
    size = int(config["Size"])
    return {"size": size, "labels": labels, "id": config["Id"]}


# --- 2. the image against PostgreSQL and the sim -------------------------------------------------


class Postgres:
    def __init__(self, workdir):
        self.env = dict(os.environ, SMO_PG_PORT=str(free_port()), SMO_PG_DIR=os.path.join(workdir, "pg"))

    def start(self):
        return run([os.path.join(ROOT, "scripts/dev-db"), "start"], env=self.env, timeout=900).stdout.strip()

    def createdb(self, name):
        version = max(os.listdir("/usr/lib/postgresql"), key=lambda v: int(v) if v.isdigit() else 0)
        run([os.path.join("/usr/lib/postgresql", version, "bin", "createdb"), "-h", "127.0.0.1", "-p", self.env["SMO_PG_PORT"], "-U", "postgres", name])
        return f"postgres://postgres@127.0.0.1:{self.env['SMO_PG_PORT']}/{name}"

    def stop(self):
        run([os.path.join(ROOT, "scripts/dev-db"), "stop"], env=self.env, check=False, timeout=120)


def api_ready_time(pm, image, db, port, runs):
    """Starts the API `runs` times; per run, ms from container start (podman's StartedAt) and from
    the `podman run` call to the first 200 of /readyz. Leaves the last one running."""
    url = f"http://127.0.0.1:{port}/readyz"
    results = []
    for i in range(runs):
        name = pm.name(f"api-{i}")
        t_call = time.time()
        pm.run(image, ["run", "--role", "api"], name=name, detach=True,
               extra=[f"--env=SMO_DATABASE_URL={db}", f"--env=SMO_LISTEN=127.0.0.1:{port}"])
        deadline = time.monotonic() + 30
        while True:
            status, _ = http(url, timeout=0.5)
            if status == 200:
                t_ready = time.time()
                break
            if time.monotonic() > deadline:
                raise CheckFailed(f"the API never became ready:\n{pm.logs(name)}")
            time.sleep(0.002)
        started = int(pm.inspect(name, "{{.State.StartedAt.UnixNano}}")) / 1e9
        results.append(((t_ready - started) * 1000, (t_ready - t_call) * 1000))
        if i < runs - 1:
            pm.stop(name)
    return results, name


def smo_cli(pm, image, api, args, mounts=(), timeout=300):
    extra = [f"--env=SMO_API_URL={api}", *(f"--volume={m}" for m in mounts)]
    return pm.run(image, args, extra=extra, timeout=timeout).stdout


def check_containers(pm, image, pg, workdir, figures, registry):
    db = pg.start()
    ok(f"throwaway PostgreSQL: {db}")

    step("smo migrate")
    out = pm.run(image, ["migrate"], extra=[f"--env=SMO_DATABASE_URL={db}"]).stdout.strip()
    ok(f"`migrate` -> {out!r}")

    step("smo sim, from the image")
    kube = os.path.join(workdir, "kube")
    os.makedirs(kube)
    os.chown(kube, 10001, 10001)
    sim_port = free_port()
    sim = pm.name("sim")
    pm.run(image, ["sim", "--listen", f"127.0.0.1:{sim_port}", "--kubeconfig-out", "/kube/karmada.kubeconfig"],
           name=sim, detach=True, extra=[f"--volume={kube}:/kube"])
    wait_http(f"http://127.0.0.1:{sim_port}/healthz", "the sim")
    kubeconfig = os.path.join(kube, "karmada.kubeconfig")
    for _ in range(100):
        if os.path.exists(kubeconfig):
            break
        time.sleep(0.05)
    ok(f"sim on 127.0.0.1:{sim_port}, kubeconfig {kubeconfig}")

    step(f"API start-up: {figures['runs']} starts, /readyz polled every 2 ms")
    api_port = free_port()
    times, api = api_ready_time(pm, image, db, api_port, figures["runs"])
    for since_start, since_call in times:
        ok(f"/readyz 200 {since_start:.0f} ms after the container started ({since_call:.0f} ms after `podman run`)")
    figures["ready_ms"] = times
    base = f"http://127.0.0.1:{api_port}"
    for path, want in [("/healthz", "ok"), ("/readyz", "ready")]:
        status, body = http(base + path)
        if status != 200 or body.strip() != want:
            raise CheckFailed(f"{path}: {status} {body!r}")
        ok(f"GET {path} -> 200 {body.strip()!r}")

    step("a worker runs jobs end to end against the sim")
    metrics_port = free_port()
    worker = pm.name("worker")
    pm.run(image, ["run", "--role", "worker"], name=worker, detach=True, extra=[
        f"--env=SMO_DATABASE_URL={db}", f"--env=SMO_METRICS_LISTEN=127.0.0.1:{metrics_port}",
        "--env=SMO_KARMADA_KUBECONFIG=/kube/karmada.kubeconfig", f"--volume={kube}:/kube:ro",
        f"--hostname={worker}"])
    wait_http(f"http://127.0.0.1:{metrics_port}/metrics", "the worker's /metrics")
    graphs = os.path.join(ROOT, "examples/graphs")
    for args in (["cluster", "sync", "--wait"],
                 ["graph", "deploy", "/graphs/hello.yaml", "--project", "image-check", "--wait"]):
        t = time.monotonic()
        out = smo_cli(pm, image, base, args, mounts=[f"{graphs}:/graphs:ro"]).strip()
        ok(f"`smo {' '.join(args)}` ({time.monotonic() - t:.1f} s): {out.splitlines()[-1] if out else ''}")
    graph = json.loads(smo_cli(pm, image, base, ["graph", "describe", "hello", "-o", "json"]))["graph"]
    statuses = {s["name"]: s["status"] for s in graph["services"]}
    if graph["status"] != "Running" or not set(statuses.values()) <= {"Deployed", "Running"}:
        raise CheckFailed(f"graph hello: {graph['status']} {statuses}")
    ok(f"graph hello: {graph['status']}, services {statuses}, placement {graph['placement']}")
    status, body = http(f"http://127.0.0.1:{sim_port}/apis/apps/v1/namespaces/image-check/deployments")
    names = [i["metadata"]["name"] for i in json.loads(body).get("items", [])] if status == 200 else []
    if not names:
        raise CheckFailed(f"no Deployment in the sim's namespace image-check ({status} {body[:200]})")
    ok(f"the sim holds Deployment(s) {names} in namespace image-check")

    helm = figures["labels"].get("io.smo.helm", "none")
    if helm == "none":
        warning = "helm is not installed or not on PATH"
        if warning not in pm.logs(worker, 100):
            raise CheckFailed(f"the worker did not warn at start that helm is missing:\n{pm.logs(worker)}")
        ok(f"no helm in the image: the worker says so at start ({warning!r}); Helm-chart services fail until "
           "SMO_HELM_BINARY points at one")
    else:
        step(f"Helm-chart services through the image's helm ({helm}): examples/graphs/shop.yaml")
        charts = os.path.join(workdir, "charts")
        os.makedirs(charts)
        for chart in ["web", "worker", "vo"]:
            out = run([os.path.join(ROOT, "scripts/helm"), "package", os.path.join(ROOT, "examples/charts", chart),
                       "-d", charts]).stdout
            tgz = out.strip().rsplit(" ", 1)[-1]
            run([os.path.join(ROOT, "scripts/helm"), "push", tgz, f"oci://{registry}/charts", "--plain-http"])
        with open(os.path.join(graphs, "shop.yaml")) as f:
            shop = f.read().replace("oci://127.0.0.1:5000/", f"oci://{registry}/")
        with open(os.path.join(charts, "shop.yaml"), "w") as f:
            f.write(shop)
        t = time.monotonic()
        out = smo_cli(pm, image, base, ["graph", "deploy", "/charts/shop.yaml", "--project", "image-check", "--wait"],
                      mounts=[f"{charts}:/charts:ro"], timeout=600).strip()
        ok(f"`smo graph deploy shop.yaml --wait` ({time.monotonic() - t:.1f} s): {out.splitlines()[-1] if out else ''}")
        releases = json.loads(run([os.path.join(ROOT, "scripts/helm"), "list", "-n", "image-check",
                                   "--kubeconfig", kubeconfig, "-o", "json"]).stdout)
        rows = sorted((r["name"], r["status"]) for r in releases)
        if rows != [("shop-sensor", "deployed"), ("shop-web", "deployed"), ("shop-worker", "deployed")]:
            raise CheckFailed(f"Helm releases in image-check: {rows}")
        ok(f"the worker's helm installed {rows} (read back by scripts/helm list)")

    step("smo-admin stats")
    admin = ["--entrypoint=smo-admin", f"--env=SMO_DATABASE_URL={db}"]
    table = pm.run(image, ["stats"], extra=admin).stdout.rstrip()
    print("\n".join("    | " + line for line in table.splitlines()))
    stats = json.loads(pm.run(image, ["stats", "-o", "json"], extra=admin).stdout)
    ok(f"smo-admin stats -o json: {json.dumps(stats)[:300]}")

    step("SIGTERM: the worker and the API stop")
    for name in [worker, api]:
        secs, code = pm.stop(name)
        if code != "0":
            raise CheckFailed(f"{name} exited {code} on SIGTERM:\n{pm.logs(name)}")
        ok(f"{name} exited 0, {secs:.1f} s after `podman stop`")
    return sim_port, kubeconfig


# --- 3. registry and chart ----------------------------------------------------------------------


def start_registry(workdir):
    port = free_port()
    data = os.path.join(workdir, "registry")
    os.makedirs(data)
    cfg = os.path.join(workdir, "registry.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {data}\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    log = open(os.path.join(workdir, "registry.log"), "w")
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", cfg], stdout=log, stderr=log)
    wait_http(f"http://127.0.0.1:{port}/v2/", "docker-registry", seconds=20)
    return proc, f"127.0.0.1:{port}"


def kube_get(sim_port, path):
    status, body = http(f"http://127.0.0.1:{sim_port}{path}")
    if status != 200:
        raise CheckFailed(f"GET {path} from the sim: {status} {body[:300]}")
    return json.loads(body)


class Kubelet:
    """Runs a pod template from the chart with podman, as a kubelet would on one node: each pod's
    listen addresses (0.0.0.0:PORT in the env) move to a free loopback port, since the pods share
    the host's network here instead of having an IP each."""

    def __init__(self, pm, sim_port, namespace, workdir):
        self.pm, self.sim_port, self.ns, self.workdir = pm, sim_port, namespace, workdir

    def secret(self, name, key, optional=False):
        status, body = http(f"http://127.0.0.1:{self.sim_port}/api/v1/namespaces/{self.ns}/secrets/{name}")
        data = json.loads(body).get("data", {}) if status == 200 else {}
        if key not in data:
            if optional:
                return None
            raise CheckFailed(f"Secret {self.ns}/{name} has no key {key} ({status})")
        return base64.b64decode(data[key]).decode()

    def run(self, pod_name, spec):
        (container,) = spec["containers"]
        pod_sc = spec.get("securityContext", {})
        sc = container.get("securityContext", {})
        flags = [f"--hostname={pod_name}"]
        if "runAsUser" in pod_sc:
            flags.append(f"--user={pod_sc['runAsUser']}:{pod_sc.get('runAsGroup', pod_sc['runAsUser'])}")
        if "fsGroup" in pod_sc:
            flags.append(f"--group-add={pod_sc['fsGroup']}")
        if sc.get("readOnlyRootFilesystem"):
            flags += ["--read-only", "--read-only-tmpfs=false"]
        if sc.get("allowPrivilegeEscalation") is False:
            flags.append("--security-opt=no-new-privileges")
        for cap in sc.get("capabilities", {}).get("drop", []):
            flags.append(f"--cap-drop={cap}")
        limit = container.get("resources", {}).get("limits", {}).get("memory")
        if limit:
            flags.append(f"--memory={limit.replace('Mi', 'm').replace('Gi', 'g')}")
        ports = {}  # containerPort -> host port
        env = []
        for e in container.get("env", []):
            if "value" in e:
                value = e["value"]
                if value.startswith("0.0.0.0:"):
                    port = int(value.split(":")[1])
                    ports[port] = free_port()
                    value = f"127.0.0.1:{ports[port]}"
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                value = self.secret(ref["name"], ref["key"], ref.get("optional", False))
                if value is None:
                    continue
            env.append(f"--env={e['name']}={value}")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for m in container.get("volumeMounts", []):
            v = volumes[m["name"]]
            d = os.path.join(self.workdir, f"{pod_name}-{m['name']}")
            os.makedirs(d)
            if "emptyDir" in v:
                # A host directory, 0777 like the kubelet's emptyDir. (podman's --tmpfs would come
                # up root-owned with the image directory's mode, 0750 for /home/smo.)
                os.chmod(d, 0o777)
                flags.append(f"--volume={d}:{m['mountPath']}:rw")
            elif "secret" in v:
                for item in v["secret"]["items"]:
                    path = os.path.join(d, item["path"])
                    with open(path, "w") as f:
                        f.write(self.secret(v["secret"]["secretName"], item["key"]))
                    os.chmod(path, 0o644)
                flags.append(f"--volume={d}:{m['mountPath']}:ro")
            else:
                raise CheckFailed(f"volume kind not emulated: {v}")
        policy = {"Always": "always", "Never": "never"}.get(container.get("imagePullPolicy"), "missing")
        flags += [f"--pull={policy}", "--tls-verify=false"]
        name = self.pm.name(pod_name)
        restart_never = spec.get("restartPolicy") == "Never"
        r = self.pm.run(container["image"], container.get("args", []), name=name, detach=not restart_never,
                        extra=flags + env, check=False, timeout=600)
        if r.returncode != 0:
            raise CheckFailed(f"{pod_name} ({container['image']} {container.get('args')}) exited "
                              f"{r.returncode}:\n{r.stdout}{r.stderr}{self.pm.logs(name) if not restart_never else ''}")
        named = {p["name"]: ports.get(p["containerPort"], p["containerPort"]) for p in container.get("ports", [])}
        return name, r.stdout.strip(), named, flags


def check_chart(pm, image, version, pg, sim_port, kubeconfig, workdir, figures, host):
    step(f"push to the docker-registry on {host}")
    ref = f"{host}/smo:{version}"
    try:
        run(["podman", "push", "--tls-verify=false", "--quiet", image, f"docker://{ref}"], timeout=600)
        manifest = json.loads(run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"]).stdout)
        digest = json.loads(run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"]).stdout)["Digest"]
        compressed = sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]
        figures["compressed"] = compressed
        ok(f"pushed {ref} ({digest}): {len(manifest['layers'])} layers, {compressed / 1e6:.1f} MB compressed")
        run(["podman", "rmi", "--force", ref], check=False)

        step("charts/smo through Helm's engine (scripts/helm) into the sim, with that image reference")
        ns = "smo-system"
        db = pg.createdb("smo_chart")
        kc = ["--kubeconfig", kubeconfig]
        run([KUBECTL, *kc, "create", "namespace", ns])
        run([KUBECTL, *kc, "-n", ns, "create", "secret", "generic", "smo-db", f"--from-literal=database-url={db}"])
        run([KUBECTL, *kc, "-n", ns, "create", "secret", "generic", "smo-karmada", f"--from-file=kubeconfig={kubeconfig}"])
        values = f"image.repository={host}/smo,database.existingSecret=smo-db,karmada.kubeconfigSecret=smo-karmada"
        out = run([os.path.join(ROOT, "scripts/helm"), "upgrade", "--install", "smo", os.path.join(ROOT, "charts/smo"),
                   "-n", ns, *kc, "--set", values], timeout=600).stdout
        ok(f"scripts/helm upgrade --install smo charts/smo --set {values}: "
           + " ".join(line for line in out.splitlines() if line.startswith("STATUS")))
        release = json.loads(run([os.path.join(ROOT, "scripts/helm"), "status", "smo", "-n", ns, *kc, "-o", "json"]).stdout)
        hooks = [yaml.safe_load(h["manifest"]) for h in release.get("hooks", [])]
        jobs = [h for h in hooks if h and h.get("kind") == "Job"]
        deployments = {d["metadata"]["name"]: d for d in
                       kube_get(sim_port, f"/apis/apps/v1/namespaces/{ns}/deployments")["items"]}
        if not jobs or sorted(deployments) != ["smo-api", "smo-scheduler", "smo-worker"]:
            raise CheckFailed(f"expected the migrate hook Job and three Deployments, got "
                              f"{[j['metadata']['name'] for j in jobs]} {sorted(deployments)}")
        images = {c["image"] for w in [*jobs, *deployments.values()] for c in w["spec"]["template"]["spec"]["containers"]}
        if images != {ref}:
            raise CheckFailed(f"the chart's image references {images} are not the pushed {ref}")
        ok(f"hook Job {jobs[0]['metadata']['name']} and Deployments {sorted(deployments)} all run {ref}")

        step("the chart's workloads, run with podman as a kubelet would")
        kubelet = Kubelet(pm, sim_port, ns, workdir)
        suffix = uuid.uuid4().hex[:5]
        t = time.monotonic()
        name, out, _, flags = kubelet.run(f"smo-migrate-{suffix}", jobs[0]["spec"]["template"]["spec"])
        ok(f"Job smo-migrate: image pulled from the registry, `{' '.join(jobs[0]['spec']['template']['spec']['containers'][0]['args'])}` "
           f"-> {out!r} ({time.monotonic() - t:.1f} s) with {' '.join(f for f in flags if not f.startswith('--hostname'))}")
        pulled = run(["podman", "image", "inspect", "--format", "{{.Id}}", ref]).stdout.strip()
        if pulled != figures["id"]:
            raise CheckFailed(f"the image pulled from {ref} ({pulled}) is not the one built ({figures['id']})")
        ok(f"the pulled image is the built one ({pulled[:12]})")
        ports = {}
        for d in ["smo-api", "smo-worker", "smo-scheduler"]:
            spec = deployments[d]["spec"]["template"]["spec"]
            name, _, ports[d], flags = kubelet.run(f"{d}-{suffix}", spec)
            ok(f"Deployment {d}: `{' '.join(spec['containers'][0]['args'])}` started with "
               + " ".join(f for f in flags if f.startswith(("--user", "--read-only", "--cap", "--security", "--memory"))))
        api = deployments["smo-api"]["spec"]["template"]["spec"]["containers"][0]
        api_port = ports["smo-api"]["http"]
        for probe in ["readinessProbe", "livenessProbe"]:
            get = api[probe]["httpGet"]
            port = ports["smo-api"][get["port"]] if isinstance(get["port"], str) else get["port"]
            body = wait_http(f"http://127.0.0.1:{port}{get['path']}", f"the api's {probe}", seconds=30)
            ok(f"smo-api {probe} GET {get['path']} -> 200 {body.strip()!r}")
        for d in ["smo-worker", "smo-scheduler"]:
            wait_http(f"http://127.0.0.1:{ports[d]['metrics']}/metrics", f"{d} /metrics", seconds=30)
            ok(f"{d}: /metrics answers on its metrics port")
        base = f"http://127.0.0.1:{api_port}"
        graphs = os.path.join(ROOT, "examples/graphs")
        out = smo_cli(pm, image, base, ["graph", "deploy", "/graphs/hello.yaml", "--project", "chart-check", "--wait"],
                      mounts=[f"{graphs}:/graphs:ro"]).strip()
        ok(f"through the chart's api and worker: `smo graph deploy hello.yaml --project chart-check --wait`: "
           f"{out.splitlines()[-1] if out else ''}")
        if figures["labels"].get("io.smo.helm", "none") != "none":
            charts = os.path.join(workdir, "charts")
            out = smo_cli(pm, image, base, ["graph", "deploy", "/charts/shop.yaml", "--project", "chart-check", "--wait"],
                          mounts=[f"{charts}:/charts:ro"], timeout=600).strip()
            releases = json.loads(run([os.path.join(ROOT, "scripts/helm"), "list", "-n", "chart-check",
                                       "--kubeconfig", kubeconfig, "-o", "json"]).stdout)
            if sorted(r["status"] for r in releases) != ["deployed"] * 3:
                raise CheckFailed(f"Helm releases in chart-check: {releases}")
            ok(f"Helm charts through the chart's worker (read-only root, helm's cache in the emptyDir "
               f"/home/smo): {out.splitlines()[-1] if out else ''}; releases {sorted(r['name'] for r in releases)}")
        status = json.loads(smo_cli(pm, image, base, ["status", "-o", "json"]))
        ok(f"`smo status` through the chart's api: {json.dumps(status)[:300]}")
    except CheckFailed:
        pm.dump_logs()
        raise
    finally:
        pm.cleanup()  # before the registry's reference is untagged
        run(["podman", "rmi", ref], check=False)


def main():
    p = argparse.ArgumentParser(prog="scripts/image.py")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("--image", required=True)
    c.add_argument("--version", required=True)
    c.add_argument("--runs", type=int, default=3, help="API starts to time")
    c.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args()

    workdir = tempfile.mkdtemp(prefix="check-", dir=os.path.join(TARGET, "image"))
    os.chmod(workdir, 0o755)
    pm = Podman(f"smo-check-{os.getpid()}")
    pg = Postgres(workdir)
    figures = {"runs": a.runs}
    t0 = time.monotonic()
    code = 0
    try:
        fs = check_filesystem(a.image)
        figures.update(fs)
        step("can containers run here?")
        errors, version = pm.probe(a.image)
        for cmd, err in errors:
            print(f"    `{cmd}` failed: {err}")
        if version is None:
            print("    containers cannot run on this machine (errors above); the filesystem checks passed")
            code = 2
        else:
            ok(f"`smo --version` in a container -> {version!r}; podman flags: "
               f"{' '.join(pm.global_flags + pm.run_flags) or '(none)'}")
            registry, host = start_registry(workdir)
            try:
                ok(f"docker-registry on {host}")
                sim_port, kubeconfig = check_containers(pm, a.image, pg, workdir, figures, host)
                check_chart(pm, a.image, a.version, pg, sim_port, kubeconfig, workdir, figures, host)
            finally:
                registry.terminate()
                registry.wait(timeout=30)
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        pm.dump_logs()
        code = 1
    except Exception:  # noqa: BLE001 - a bug of this script: show it, still clean up
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        pm.cleanup()
        pg.stop()
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    step(f"figures for {a.image} (binaries: {figures.get('labels', {}).get('io.smo.binaries')}, "
         f"helm: {figures.get('labels', {}).get('io.smo.helm')})")
    if "size" in figures:
        print(f"    image size: {figures['size'] / 1e6:.1f} MB ({figures['size']} bytes, goal < 120 MB)")
    if "compressed" in figures:
        print(f"    compressed in the registry: {figures['compressed'] / 1e6:.1f} MB")
    if "ready_ms" in figures:
        starts = ", ".join(f"{s:.0f}" for s, _ in figures["ready_ms"])
        calls = ", ".join(f"{c:.0f}" for _, c in figures["ready_ms"])
        print(f"    API /readyz after the container started: {starts} ms (goal < 1000 ms); "
              f"after `podman run`: {calls} ms")
    with open("/proc/loadavg") as f:
        print(f"    load average during the check: {' '.join(f.read().split()[:3])}; {os.cpu_count()} CPUs")
    print(f"    check took {time.monotonic() - t0:.0f} s: {'passed' if code == 0 else 'FAILED' if code == 1 else 'filesystem only'}")
    sys.exit(code)


if __name__ == "__main__":
    main()
